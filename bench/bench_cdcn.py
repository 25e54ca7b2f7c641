"""CPU benchmark of CDCN+DUM (``CDCN_u``): ours (folded CDC, fused BN-ReLU-conv training nodes,
channels_last, in-place ReLU) against the original two-convolution form at equal batch.

For each configuration (the paper's 256x256 model, and a small CPU size) and each variant it reports
parameters, FLOPs per image (forward, and a training step), training images/s (forward, DUM losses
MSE + contrastive depth + KL, backward, Adam step), inference images/s (eval, no_grad), the thread
count, and peak memory. Memory is measured per variant in a fresh subprocess, so ``ru_maxrss`` is that
run's own peak; "added" is that peak minus the resident size just before the first step (model,
optimizer and batch already built), i.e. the memory a training step (or inference batch) adds.
Speed is measured with all variants in one subprocess, their steps interleaved, so that load from
other jobs on a shared machine hits every variant alike; the median and the best step are reported.

    python bench/bench_cdcn.py                      # 256x256 batch 8 and 64x64 width 0.25, 2 threads
    python bench/bench_cdcn.py --skip-full --small-batch 16
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

from networks.cdc import set_cdc_fold
from networks.cdcn_u import CDCN_u
from utils.io import atomic_write_json
from utils.perf import to_channels_last
from utils.run import setup_logging

log = logging.getLogger(__name__)

VARIANTS = {
    # name: (fold, memory_efficient, channels_last, inplace ReLU)
    "original": (False, False, False, False),   # DSDG's CDCN_u as shipped: two convs per CD layer, NCHW
    "folded": (True, True, True, True),         # what networks/cdcn_u.py trains with by default, channels_last
    "folded-nchw": (True, True, False, True),   # ablation: same without channels_last
    "folded-plain": (True, False, True, True),  # ablation: no fused BN-ReLU-conv nodes
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="input side of the full configuration")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier of the full configuration")
    p.add_argument("--batch", type=int, default=8, help="batch size of the full configuration")
    p.add_argument("--small-size", type=int, default=64, help="input side of the small CPU configuration")
    p.add_argument("--small-width", type=float, default=0.25, help="width multiplier of the small configuration")
    p.add_argument("--small-batch", type=int, default=8, help="batch of the small configuration (0 skips it)")
    p.add_argument("--skip-full", action="store_true", help="only run the small configuration")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every measurement")
    p.add_argument("--variants", default="original,folded",
                   help=f"comma-separated, from {', '.join(VARIANTS)}; the first is the baseline")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed steps before timing, per variant (memory runs do warmup + 1 steps)")
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps (median and best reported)")
    p.add_argument("--infer-steps", type=int, default=3, help="timed inference batches (median and best reported)")
    p.add_argument("--json-out", default="", help="also write all results to this JSON file")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    return p


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


_CDL_KERNELS = None


def contrast_depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DUM/CDCN contrastive depth loss: MSE of the 8 neighbour-minus-centre contrasts (no padding)."""
    global _CDL_KERNELS
    if _CDL_KERNELS is None:
        k = torch.zeros(8, 1, 3, 3)
        for i, (r, c) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]):
            k[i, 0, 1, 1], k[i, 0, r, c] = -1.0, 1.0
        _CDL_KERNELS = k
    k = _CDL_KERNELS.to(pred.dtype)
    return F.mse_loss(F.conv2d(pred.unsqueeze(1), k), F.conv2d(target.unsqueeze(1), k))


def dum_loss(out, depth: torch.Tensor, kl_weight: float = 1e-3) -> torch.Tensor:
    """MSE(sample, D) + CDL(sample, D) + kl_weight * KL(N(mu, sigma^2) || N(D, 1)) (docs/ORIGINAL.md 3.4)."""
    kl = 0.5 * (out.logvar.exp() + (out.mu - depth) ** 2 - 1.0 - out.logvar)
    return (F.mse_loss(out.sample, depth) + contrast_depth_loss(out.sample, depth)
            + kl_weight * kl.sum(dim=(1, 2)).mean())


def build_variant(name: str, size: int, width: float) -> tuple[CDCN_u, bool]:
    fold, mem_eff, channels_last, inplace = VARIANTS[name]
    model = CDCN_u(width=width, image_size=size, memory_efficient=mem_eff)
    set_cdc_fold(model, fold)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = inplace
    if channels_last:
        model = to_channels_last(model)
    return model, channels_last


def count_flops(variant: str, size: int, width: float) -> dict:
    """Forward and training-step FLOPs for one image, counted by torch's FlopCounterMode on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        model, _ = build_variant(variant, size, width)
        x = torch.zeros(1, 3, size, size)
        depth = torch.zeros(1, size // 8, size // 8)
    counter = FlopCounterMode(display=False)
    with counter:
        dum_loss(model(x), depth).backward()
    train = counter.get_total_flops()
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return {"flops_forward": counter.get_total_flops(), "flops_train_step": train}


def _setup(variant: str, size: int, width: float, batch: int, mode: str):
    """Model, batch and a closure running one training step (or one inference batch)."""
    torch.manual_seed(0)
    model, channels_last = build_variant(variant, size, width)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.rand(batch, 3, size, size) * 2 - 1).contiguous(memory_format=fmt)
    depth = torch.rand(batch, size // 8, size // 8)
    depth[batch // 2:] = 0.0  # spoof targets are all-zero maps
    if mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5)

        def fn():
            loss = dum_loss(model(x), depth)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def fn():
            with torch.no_grad():
                model(x)
    return model, fn


def worker(cfg: dict) -> dict:
    """``memory``: one variant alone, peak RSS over warm-up + one step. ``speed``: all variants in one
    process, steps interleaved round-robin so the shared machine's load hits every variant alike."""
    torch.set_num_threads(cfg["threads"])
    size, width, batch, mode = cfg["size"], cfg["width"], cfg["batch"], cfg["mode"]
    if cfg["kind"] == "memory":
        model, fn = _setup(cfg["variants"][0], size, width, batch, mode)
        rss0 = _rss_mb()
        for _ in range(cfg["warmup"] + 1):
            fn()
        return {"threads": torch.get_num_threads(), "params": sum(p.numel() for p in model.parameters()),
                "rss_before_mb": rss0, "peak_mb": _peak_mb(), "added_mb": _peak_mb() - rss0}
    fns = {v: _setup(v, size, width, batch, mode)[1] for v in cfg["variants"]}
    for fn in fns.values():
        for _ in range(cfg["warmup"]):
            fn()
    times = {v: [] for v in fns}
    for _ in range(cfg["steps"]):
        for v, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[v].append(time.perf_counter() - t0)
    # Median step time is the headline; the best step shows what the code does when the other jobs
    # on a shared machine leave it alone.
    return {"threads": torch.get_num_threads(),
            "variants": {v: {"images_per_s": batch / statistics.median(t), "best_images_per_s": batch / min(t),
                             "seconds_per_step": statistics.median(t)} for v, t in times.items()}}


def _spawn(cfg: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    threads = str(cfg["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {cfg}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    configs = []
    if not args.skip_full:
        configs.append((args.size, args.width, args.batch))
    if args.small_batch > 0:
        configs.append((args.small_size, args.small_width, args.small_batch))
    results = []
    for size, width, batch in configs:
        rows = {v: dict(size=size, width=width, batch=batch, variant=v, **count_flops(v, size, width))
                for v in variants}
        base = dict(size=size, width=width, batch=batch, warmup=args.warmup, threads=args.threads)
        for mode, steps in (("train", args.train_steps), ("infer", args.infer_steps)):
            for v in variants:
                log.info("memory: %s %dx%d width %.2f batch %d (%s)", v, size, size, width, batch, mode)
                r = _spawn(dict(base, kind="memory", mode=mode, variants=[v]))
                rows[v].update(params=r["params"], threads=r["threads"],
                               **{f"{mode}_{k}": r[k] for k in ("peak_mb", "added_mb")})
            log.info("speed: %s %dx%d width %.2f batch %d (%s, interleaved)", ",".join(variants), size, size,
                     width, batch, mode)
            r = _spawn(dict(base, kind="speed", mode=mode, variants=variants, steps=steps))
            for v in variants:
                rows[v].update({f"{mode}_{k}": val for k, val in r["variants"][v].items()})
        for v in variants:
            log.info("%s", _format_row(rows[v]))
            results.append(rows[v])
    _report(results, variants[0])
    if args.json_out:
        atomic_write_json(args.json_out, results)
    return {"results": results}


def _format_row(r: dict) -> str:
    return (f"{r['variant']:>12} {r['size']:>4}px w{r['width']:<4} b{r['batch']:<3} params {r['params']:>9,d} "
            f"GFLOP/img fwd {r['flops_forward'] / 1e9:7.2f} train {r['flops_train_step'] / 1e9:7.2f} | "
            f"train {r['train_images_per_s']:7.3f} img/s (best {r['train_best_images_per_s']:.3f}; "
            f"{r['train_seconds_per_step']:.2f} s/step, "
            f"{r['flops_train_step'] * r['train_images_per_s'] / 1e9:5.1f} GFLOP/s) added {r['train_added_mb']:7.0f} MB "
            f"peak {r['train_peak_mb']:7.0f} MB | infer {r['infer_images_per_s']:7.3f} img/s "
            f"(best {r['infer_best_images_per_s']:.3f}) "
            f"peak {r['infer_peak_mb']:6.0f} MB | threads {r['threads']}")


def _report(results: list, baseline: str) -> None:
    log.info("results (torch %s, %s)", torch.__version__, "threads per row")
    for r in results:
        log.info("%s", _format_row(r))
    for r in results:
        if r["variant"] == baseline:
            continue
        base = next((b for b in results if b["variant"] == baseline and
                     (b["size"], b["width"], b["batch"]) == (r["size"], r["width"], r["batch"])), None)
        if base is None:
            continue
        log.info("%s vs %s at %dpx w%s b%d: training %.2fx images/s (best steps %.2fx), inference %.2fx "
                 "(best %.2fx), training-step memory %.2fx (added %.0f vs %.0f MB), training FLOPs %.2fx",
                 r["variant"], baseline, r["size"], r["width"], r["batch"],
                 r["train_images_per_s"] / base["train_images_per_s"],
                 r["train_best_images_per_s"] / base["train_best_images_per_s"],
                 r["infer_images_per_s"] / base["infer_images_per_s"],
                 r["infer_best_images_per_s"] / base["infer_best_images_per_s"],
                 r["train_added_mb"] / base["train_added_mb"], r["train_added_mb"], base["train_added_mb"],
                 r["flops_train_step"] / base["flops_train_step"])


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    setup_logging(None)
    return run(args)


if __name__ == "__main__":
    main()
