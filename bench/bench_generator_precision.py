"""Generator training in float32 against bf16 (and fp16 on CUDA): speed and the loss curve.

    python bench/bench_generator_precision.py --out gen_precision.json -- \
        --img-root demo_run/data/oulu_images --train-list demo_run/data/train_list.txt \
        --ip-model demo_run/lightcnn/LightCNN_29Layers_V2_checkpoint.pth.tar --ip-width 0.25 \
        --image-size 64 --width 0.25 --batch-size 8 --epochs 2 --limit-batches 10 --device cpu

Everything after ``--`` is passed to ``train_generator.py``'s parser; each precision trains from the
same seed in its own temporary folder with the real trainer (generation.trainer), and the
per-iteration ``total`` loss of each is compared with float32's. On CPU, bf16 autocast is forced
here (the trainer itself trains in float32 on CPU): the loss curve shows what bf16 changes, but
CPU speed says nothing about a GPU's.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import csv
import logging
import tempfile
import time

import torch

import train_generator
from generation.trainer import GeneratorTrainer
from utils.dist import DistInfo
from utils.io import atomic_write_json
from utils.run import resolve_device, setup_logging
from utils.training import grad_scaler

log = logging.getLogger("bench.generator_precision")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=tuple(DTYPES),
                   help="precisions to train (fp32 first: the others are compared with it; fp16 needs CUDA)")
    p.add_argument("--out", default="gen_precision.json", help="JSON report")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then train_generator.py flags")
    return p


def train_once(train_argv: list[str], precision: str, out_dir: Path) -> dict:
    """Train with the real trainer, autocast forced to ``precision``; per-iteration totals and timing."""
    args = train_generator.build_parser().parse_args([*train_argv, "--out-dir", str(out_dir), "--no-resume",
                                                      "--no-tensorboard", "--num-preview", "0"])
    train_generator.resolve_defaults(args)
    device = resolve_device(args.device)
    if precision == "fp16" and device.type != "cuda":
        raise SystemExit("fp16 needs CUDA (no loss scaling on CPU)")
    trainer = GeneratorTrainer(args, DistInfo(device=device))
    trainer.amp_dtype = DTYPES[precision]  # forced, also on CPU (the trainer alone keeps CPU in float32)
    trainer.scaler = grad_scaler(device, trainer.amp_dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.fit()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    with open(out_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        totals = [float(r["total"]) for r in csv.DictReader(f)]
    return {"precision": precision, "device": str(device), "seconds": seconds, "iterations": len(totals),
            "seconds_per_iteration": seconds / max(len(totals), 1), "total": totals}


def compare(runs: list[dict]) -> list[dict]:
    """Each run against the first (float32): largest relative gap of the per-iteration total loss."""
    ref = runs[0]["total"]
    rows = []
    for run in runs:
        gaps = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(run["total"], ref)]
        rows.append({"precision": run["precision"], "seconds_per_iteration": run["seconds_per_iteration"],
                     "speed_vs_fp32": runs[0]["seconds_per_iteration"] / run["seconds_per_iteration"],
                     "first_total": run["total"][0], "last_total": run["total"][-1],
                     "max_rel_gap_vs_fp32": max(gaps) if gaps else 0.0,
                     "mean_rel_gap_vs_fp32": sum(gaps) / len(gaps) if gaps else 0.0})
    return rows


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging()
    train_argv = [a for a in args.train_args if a != "--"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="gen_precision_") as tmp:
        for precision in args.precisions:
            runs.append(train_once(train_argv, precision, Path(tmp) / precision))
            log.info("%s: %.3f s/iteration over %d iterations", precision, runs[-1]["seconds_per_iteration"],
                     runs[-1]["iterations"])
    report = {"train_args": train_argv, "summary": compare(runs), "runs": runs}
    for row in report["summary"]:
        log.info("%-5s %.3f s/it (x%.2f vs fp32)  total %.5g -> %.5g  max rel gap %.2e  mean %.2e",
                 row["precision"], row["seconds_per_iteration"], row["speed_vs_fp32"], row["first_total"],
                 row["last_total"], row["max_rel_gap_vs_fp32"], row["mean_rel_gap_vs_fp32"])
    atomic_write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
