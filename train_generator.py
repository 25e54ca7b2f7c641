"""Train the DSDG dual-VAE generator (docs/ORIGINAL.md 2) on the generator training list.

    python train_generator.py --img-root oulu_images --train-list train_list/train_list_oulu_p1.txt
    torchrun --nproc_per_node=4 train_generator.py ...          # DDP; --batch-size is the total

Defaults are the values the original ``train_generator.sh`` ran with (batch 240, 200 epochs, lambdas
50/1000/5/10/1, previews and checkpoints every 10 epochs). The run folder (--out-dir) gets
config.json, log.txt, metrics.csv (per iteration), metrics_epoch.csv, last.pt (resume point),
epoch_<E>.pt (epoch 1 and every --save-epoch), previews/Epoch_<EEE>_*.png, train_summary.json.
A rerun resumes from --out-dir/last.pt unless --no-resume.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from data.protocol_args import default_out_dir, protocol_arg, protocol_tag  # noqa: E402
from utils.dist import init_distributed, run_training_stage  # noqa: E402
from utils.schedule import default_workers  # noqa: E402

log = logging.getLogger("train_generator")


def build_parser() -> argparse.ArgumentParser:
    """Every flag with its default and help, one per line, grouped (long, but only a list)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--img-root", default="oulu_images", help="full-frame tree holding train_img_flod/ and train_bbox_flod/")
    g.add_argument("--protocol", type=protocol_arg, default=1,
                   help="OULU-NPU protocol 1-4 or a CSV protocol: only picks the defaults of --train-list and --out-dir")
    g.add_argument("--train-list", default=None,
                   help="generator training list (data/make_train_list.py; default train_list/train_list_oulu_p<P>.txt, "
                        "runs/<csv stem>/train_list.txt for a CSV)")
    g.add_argument("--crop-scale", type=float, default=1.3,
                   help="faces are cut at this multiple of the box: 1.3 as the depth network's dev/test crops, so "
                        "generated faces are framed like real ones (the original: 1.0)")
    g.add_argument("--on-missing", choices=("skip", "error"), default="skip",
                   help="a listed frame without image or box: skip it and list it in skipped_inputs.csv, or stop")
    g.add_argument("--workers", type=int, default=default_workers(8),
                   help="DataLoader worker processes per process (default min(8, CPU count - 1))")
    g.add_argument("--threads", type=int, default=0, help="torch/OpenCV CPU threads per process (0 = library default)")
    g = p.add_argument_group("model")
    g.add_argument("--image-size", type=int, default=256, choices=(256, 128, 64), help="generator resolution (64/128 for CPU)")
    g.add_argument("--width", type=float, default=1.0, help="channel multiplier of the generator (1.0 = the published net; <1 for CPU tests)")
    g.add_argument("--hdim", type=int, default=128, help="size of each latent")
    g.add_argument("--attack-types", type=int, default=0,
                   help="spoof types (OULU: 4, file ids 2..5); 0 = from the training list (highest spoof file id - 1)")
    g = p.add_argument_group("identity network (LightCNN-29 v2, frozen)")
    g.add_argument("--ip-model", default="./ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar",
                   help="LightCNN checkpoint (published layout, or train_lightcnn.py output)")
    g.add_argument("--ip-width", type=float, default=1.0, help="channel multiplier of that LightCNN (1.0 = published)")
    g.add_argument("--no-identity-loss", action="store_true",
                   help="train WITHOUT the identity-preserving and pairing terms (not DSDG; explicit opt-out)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=240, help="total batch over all processes (.sh: 240; original .py default 8)")
    g.add_argument("--epochs", type=int, default=200, help="last epoch, 1-based inclusive (.sh: 200; .py default 500)")
    g.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    g.add_argument("--lambda-mmd", type=float, default=50.0, help="weight of the identity batch-mean alignment ('mmd'; .py default 10)")
    g.add_argument("--lambda-ip", type=float, default=1000.0, help="weight of identity preserving (.py default 10)")
    g.add_argument("--lambda-pair", type=float, default=5.0, help="weight of identity pairing (.py default 0.5)")
    g.add_argument("--lambda-type", type=float, default=10.0, help="weight of spoof-type classification (.py default 1)")
    g.add_argument("--lambda-ort", type=float, default=1.0, help="weight of the orthogonality term (.py default 0.1)")
    g.add_argument("--warmup-epochs", type=int, default=1, help="epochs in which all but rec are scaled by --warmup-factor (original: 1)")
    g.add_argument("--warmup-factor", type=float, default=0.01, help="scale of the non-rec terms during warm-up")
    g.add_argument("--compat-untrained-classifier", action="store_true",
                   help="reproduce the original: the spoof-type classifier is not optimised (stays random)")
    g.add_argument("--limit-batches", type=int, default=0, help="at most this many iterations per epoch (0 = all; for smoke runs)")
    g = p.add_argument_group("run")
    g.add_argument("--out-dir", default=None,
                   help="run folder: checkpoints, config, log, metrics (default model_oulu_p<P>, runs/<csv stem>/generator)")
    g.add_argument("--preview-dir", default="", help="preview PNG folder (default: <out-dir>/previews)")
    g.add_argument("--num-preview", type=int, default=64, help="images per preview grid (0 = no previews; original: the batch size)")
    g.add_argument("--test-epoch", type=int, default=10, help="previews at epoch 1 and every N epochs")
    g.add_argument("--save-epoch", type=int, default=10, help="keep epoch_<E>.pt at epoch 1 and every N epochs (last.pt every epoch)")
    g.add_argument("--print-freq", type=int, default=20, help="log the losses every N iterations")
    g.add_argument("--resume", default="auto", help="checkpoint to resume from ('auto' = <out-dir>/last.pt when present)")
    g.add_argument("--no-resume", action="store_true", help="start over even if <out-dir>/last.pt exists")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, partner draws, shuffling and noise")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--amp", choices=("off", "bf16", "fp16", "auto"), default="off",
                   help="mixed precision on CUDA: off = float32 as the paper trained; bf16/fp16 autocast "
                        "(auto = bf16 where supported); see bench/bench_generator_precision.py. Ignored on CPU")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower on GPU)")
    g.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs even if installed")
    return p


def resolve_defaults(args) -> None:
    """--train-list and --out-dir from --protocol when not given."""
    if args.train_list is None:
        args.train_list = (f"train_list/train_list_oulu_{protocol_tag(args.protocol)}.txt"
                           if isinstance(args.protocol, int) else f"runs/{protocol_tag(args.protocol)}/train_list.txt")
    if args.out_dir is None:
        args.out_dir = str(default_out_dir(args.protocol, None, f"model_oulu_{protocol_tag(args.protocol)}", "generator"))


def run(args, dist_info=None) -> dict:
    from generation.trainer import train  # deferred: torch
    from utils.schedule import set_threads

    set_threads(args.threads)
    return train(args, dist_info or init_distributed(args.device))


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    resolve_defaults(args)
    from generation.trainer import SetupError  # deferred: torch
    from utils.training import NonFiniteLossError

    return run_training_stage(args, run, (SetupError, NonFiniteLossError))


if __name__ == "__main__":
    main()
