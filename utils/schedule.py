"""Training length, CPU threads and loader workers that fit any dataset and machine.

**What an epoch is** (DUM/train.py, DUM/sampler.py): ``max(real videos, generated folders) // 48``
batches of 48 real + 16 generated frames by default (the original's rule; ``--epoch-batches real``:
``ceil(real videos / 48)``, one frame of every real video). The paper's 1,600 epochs with dev
evaluation from epoch 200 every 50 are sized for OULU-NPU Protocol 1 (1,200 real videos, 700
generated folders: 25 batches per epoch, about 40,000 iterations). A dataset with 100 rows has 2
batches per epoch, so the same numbers mean 3,200 iterations. ``--iterations N`` states the budget in optimiser steps instead: the whole schedule
(``--epochs``, ``--eval-start``, ``--eval-every``, ``--step-size``) is stretched by the same factor
so that the run lasts ``N`` iterations, keeping the paper's proportions (first dev evaluation after
1/8 of the run, then every 1/32, learning rate halved every 5/16).
"""
from __future__ import annotations

import logging
import math
import os

log = logging.getLogger(__name__)

SCHEDULE_FLAGS = ("eval_start", "eval_every", "step_size")  # given in epochs, relative to --epochs


def iteration_schedule(iterations: int, batches_per_epoch: int, epochs: int, **epoch_flags: int) -> dict:
    """``{"epochs": E, <flag>: value, ...}`` so that E epochs take about ``iterations`` batches.

    Each flag keeps its share of the run: ``max(1, round(flag * E / epochs))``.
    """
    if iterations <= 0 or batches_per_epoch <= 0 or epochs <= 0:
        raise ValueError("iterations, batches per epoch and epochs must be positive")
    new_epochs = max(1, math.ceil(iterations / batches_per_epoch))
    scale = new_epochs / epochs
    return {"epochs": new_epochs, **{k: max(1, round(v * scale)) for k, v in epoch_flags.items()}}


def apply_iteration_budget(args, batches_per_epoch: int) -> None:
    """Rewrite ``args.epochs`` and the schedule flags from ``args.iterations`` (no-op when 0)."""
    if not getattr(args, "iterations", 0):
        return
    before = {k: getattr(args, k) for k in ("epochs", *SCHEDULE_FLAGS)}
    new = iteration_schedule(args.iterations, batches_per_epoch, args.epochs,
                             **{k: getattr(args, k) for k in SCHEDULE_FLAGS})
    for key, value in new.items():
        setattr(args, key, value)
    log.info("--iterations %d at %d batches per epoch: %s -> %s", args.iterations, batches_per_epoch, before, new)


def default_workers(cap: int = 4) -> int:
    """DataLoader workers that leave a core for the main process: ``min(cap, cpu count - 1)``, >= 0."""
    return max(0, min(cap, (os.cpu_count() or 1) - 1))


def set_threads(threads: int) -> None:
    """``--threads N``: torch intra-op threads and OpenCV's pool (0 = leave the libraries' defaults)."""
    if threads <= 0:
        return
    import cv2  # deferred: only stages that run networks call this
    import torch

    torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))
