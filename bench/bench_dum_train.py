"""Throughput of the depth-network stage: training step, scoring, and the augmenting data loader.

    python bench/bench_dum_train.py --device cuda --out bench_dum.json [--crop-root oulu_images_crop]

Training steps and scoring use synthetic tensors of the real shapes (batch 64 = 48 real + 16
generated, 3x256x256 -> 32x32), fp32 and AMP; with ``--crop-root`` also the training loader
(JPEG decode + the full augmentation) in items/s. Times are the median of ``--iters`` after
``--warmup`` (CUDA synchronised).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import statistics
import time

import torch
from torch.utils.data import DataLoader

from data.protocols import read_protocol
from DUM.dataset import AugmentConfig, DepthTrainDataset
from DUM.engine import depth_outputs
from DUM.losses import dum_loss
from DUM.sampler import RealGeneratedBatchSampler
from networks import DEPTH_NETS, build_depth_net
from utils.run import resolve_device, setup_logging
from utils.training import autocast

log = logging.getLogger("bench.dum_train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--model", default="cdcn_u", choices=DEPTH_NETS, help="network (networks/registry.py)")
    p.add_argument("--image-size", type=int, default=256, help="input side")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier")
    p.add_argument("--batch-size", type=int, default=64, help="training batch")
    p.add_argument("--frame-batch", type=int, default=64, help="frames per scoring forward")
    p.add_argument("--iters", type=int, default=20, help="timed iterations")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--crop-root", default=None, help="crop tree for the loader benchmark (train split, Train*.txt)")
    p.add_argument("--train-list", default=None, help="protocol for the loader benchmark")
    p.add_argument("--workers", type=int, default=8, help="loader workers")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    return p


def _timed(fn, device, iters, warmup) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(args, device, amp: bool) -> dict:
    torch.manual_seed(0)
    model = build_depth_net(args.model, width=args.width, image_size=args.image_size).to(device)
    m = model.map_size
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    target = torch.rand(args.batch_size, m, m, device=device)
    generated = torch.arange(args.batch_size, device=device) >= int(args.batch_size * 0.75)

    def step():
        with autocast(device, torch.float16 if amp else None):
            pred, mu, logvar = depth_outputs(model(x))
        loss = dum_loss(pred, mu, logvar, target, generated).total
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    model.train()
    t_step = _timed(step, device, args.iters, args.warmup)
    frames = torch.randn(args.frame_batch, 3, args.image_size, args.image_size, device=device)
    model.eval()

    @torch.no_grad()
    def score():
        with autocast(device, torch.float16 if amp else None):
            depth_outputs(model(frames))

    t_eval = _timed(score, device, args.iters, args.warmup)
    out = {"amp": amp, "memory_efficient": bool(getattr(model, "memory_efficient", False)), "train_step_s": t_step, "train_images_per_s": args.batch_size / t_step,
           "epoch_of_25_steps_s": 25 * t_step, "full_run_1600_epochs_h": 1600 * 25 * t_step / 3600,
           "score_frames_per_s": args.frame_batch / t_eval}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return out


def bench_loader(args) -> dict:
    items = read_protocol(args.train_list)
    ds = DepthTrainDataset(items, args.crop_root, "train", args.image_size, args.image_size // 8, AugmentConfig())
    # Repeat the (few) real items so an epoch has the original's 1200 real draws (25 batches): the
    # workers are re-created every epoch, and that start-up cost belongs in the number.
    reps = -(-1200 // len(ds.real_indices))
    sampler = RealGeneratedBatchSampler(ds.real_indices * reps, ds.generated_indices, args.batch_size, 0.75)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=args.workers, pin_memory=torch.cuda.is_available())
    n, epochs, t0 = 0, 0, time.perf_counter()
    while epochs < 2 or time.perf_counter() - t0 < 15:
        epochs += 1
        sampler.set_epoch(epochs)
        ds.set_epoch(epochs)
        for batch in loader:
            n += batch["image"].shape[0]
    dt = time.perf_counter() - t0
    return {"workers": args.workers, "epochs": epochs, "batches_per_epoch": len(sampler), "items": n,
            "items_per_s": n / dt, "epoch_s": dt / epochs}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(None)
    device = resolve_device(args.device)
    result = {"device": str(device), "torch": torch.__version__, "model": args.model, "image_size": args.image_size,
              "width": args.width, "batch_size": args.batch_size}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    result["runs"] = [bench_model(args, device, amp) for amp in ((False, True) if device.type == "cuda" else (False,))]
    if args.crop_root and args.train_list:
        result["loader"] = bench_loader(args)
    log.info("%s", json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
