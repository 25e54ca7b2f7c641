"""Train a LightCNN-29 v2 identity network on a folder of identity-labelled faces.

    python train_lightcnn.py --data-root faces/train --val-root faces/val --out-dir lightcnn_run
    torchrun --nproc_per_node=4 train_lightcnn.py --data-root ...       # DDP; --batch-size is the total

For users whose copy of the published LightCNN_29Layers_V2_checkpoint.pth.tar (AlfredXiangWu/LightCNN)
is gone: ``<data-root>/<identity>/<image>`` (aligned or tight face crops, any size; they are resized
to 144x144 grey and cropped to 128x128). The run folder gets config.json, log.txt, metrics.csv,
last.pt (resume point; a rerun resumes unless --no-resume) and the exported checkpoint in the
published layout, which train_generator.py reads with --ip-model (and --ip-width when --width != 1).

The published network (width 1.0, batch 128, SGD) takes tens of seconds per iteration on a CPU.
``--preset cpu`` picks a setting that learns in minutes there: width 0.125 (about 0.4 M parameters),
batch 16, Adam at 1e-3 without decay, 15 epochs, all CPU threads; any flag given explicitly still
wins. Pass the same width to train_generator.py as --ip-width.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from utils.checkpoint import CheckpointError  # noqa: E402
from utils.dist import init_distributed, run_training_stage  # noqa: E402
from utils.schedule import default_workers  # noqa: E402

log = logging.getLogger("train_lightcnn")


PRESETS = {
    # ~0.8 s per iteration on one busy CPU core (width 1.0, batch 32: ~38 s); see README "Your own dataset"
    "cpu": {"width": 0.125, "batch_size": 16, "optimizer": "adam", "lr": 1e-3, "lr_step": 10_000, "epochs": 15,
            "threads": os.cpu_count() or 1, "print_freq": 10},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--preset", choices=tuple(PRESETS), default=None,
      help="cpu: a CPU-sized setting that learns in minutes (defaults of the flags below change; explicit flags win)")
    a("--data-root", required=True, help="training faces, one folder per identity")
    a("--val-root", default="", help="validation faces with the same identity folders (optional; top-1 accuracy)")
    a("--out-dir", default="lightcnn_run", help="run folder: config, log, metrics, last.pt")
    a("--export", default="", help="published-layout checkpoint to write (default: <out-dir>/LightCNN_29Layers_V2_checkpoint.pth.tar)")
    a("--width", type=float, default=1.0, help="channel multiplier (1.0 = the published LightCNN-29 v2)")
    a("--epochs", type=int, default=80, help="epochs (LightCNN: 80)")
    a("--batch-size", type=int, default=128, help="total batch over all processes (LightCNN: 128)")
    a("--optimizer", choices=("sgd", "adam"), default="sgd", help="SGD with momentum (LightCNN) or Adam")
    a("--lr", type=float, default=None, help="learning rate (default 0.01 for sgd, 1e-3 for adam)")
    a("--momentum", type=float, default=0.9, help="SGD momentum")
    a("--weight-decay", type=float, default=1e-4, help="weight decay")
    a("--lr-step", type=int, default=10, help="multiply the learning rate by --lr-gamma every N epochs")
    a("--lr-gamma", type=float, default=0.457305051927326, help="learning-rate factor (LightCNN's)")
    a("--workers", type=int, default=default_workers(), help="DataLoader workers per process (default min(4, CPU count - 1))")
    a("--threads", type=int, default=0, help="torch/OpenCV CPU threads per process (0 = library default)")
    a("--limit-batches", type=int, default=0, help="at most this many iterations per epoch (0 = all; smoke runs)")
    a("--print-freq", type=int, default=100, help="log every N iterations")
    a("--resume", default="auto", help="checkpoint to resume from ('auto' = <out-dir>/last.pt when present)")
    a("--no-resume", action="store_true", help="start over even if <out-dir>/last.pt exists")
    a("--seed", type=int, default=0, help="seed of weights, shuffling and crops")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    a("--amp", choices=("off", "bf16", "fp16", "auto"), default="off",
      help="mixed precision on CUDA: off = float32; bf16/fp16 autocast (auto = bf16 where supported); ignored on CPU")
    a("--deterministic", action="store_true", help="deterministic kernels")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse twice: a --preset only changes the defaults, so flags given explicitly still win."""
    parser = build_parser()
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    return parser.parse_args(argv)


def run(args, dist_info=None) -> dict:
    from generation.lightcnn_trainer import train_lightcnn  # deferred: torch and torchvision
    from utils.schedule import set_threads

    set_threads(args.threads)
    return train_lightcnn(args, dist_info or init_distributed(args.device))


def main(argv=None) -> dict:
    from utils.training import NonFiniteLossError  # deferred: torch

    args = parse_args(argv)
    return run_training_stage(args, run, (CheckpointError, NonFiniteLossError))


if __name__ == "__main__":
    main()
