"""Train CDCN + Depth Uncertainty Module (DSDG, docs/ORIGINAL.md 1.10, 3.4-3.8) on real + generated crops.

Reads only the training list (``Train_g`` when it exists, else ``Train``) and the dev list of the
chosen OULU-NPU protocol/fold: model selection (``best.pt``) and early stopping look at dev only,
and the test list is never opened (there is no flag for it; tests/test_dum_train_test.py checks).

Best model: lowest dev ACER of the CDCN-compatible row (dev EER threshold, pooled APCER, the
numbers the original printed as ``val_ACER``); ties go to the lower dev EER (ISO row), then to the
later epoch: once dev is separated without error, equal keys say nothing, and the longer-trained
model is the one the original reports (it evaluates the final epochs and selects nothing).
``--patience`` counts dev evaluations without a strictly better key. Every checkpoint carries its
dev thresholds (``threshold`` = CDCN-compatible, ``threshold_eer`` = ISO EER) and
``threshold_source`` (the dev list), for test.py and prediction.

    python DUM/train.py --crop-root oulu_images_crop --protocol 1 --out-dir runs/CDCN_U_P1
    torchrun --nproc_per_node 4 DUM/train.py ...   # --batch-size stays the global batch (64)
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm.contrib.logging import logging_redirect_tqdm

from data.protocol_args import default_out_dir as protocol_out_dir
from data.protocol_args import generated_list_name, protocol_arg, resolve_list
from data.protocols import describe, filter_split, read_protocol
from DUM.dataset import FRAME_DRAWS, AugmentConfig, DepthEvalDataset, DepthTrainDataset
from DUM.engine import LOSS_KEYS, EvalResult, dev_summary, evaluate, original_format, train_one_epoch
from DUM.html_report import write_report
from DUM.sampler import EPOCH_RULES, RealGeneratedBatchSampler
from DUM.scores import write_scores
from networks import DEPTH_NETS, build_depth_net
from utils.checkpoint import CheckpointError, load_checkpoint, unwrap
from utils.dist import barrier, broadcast_buffers, cleanup, init_distributed
from utils.io import InputError, SkipReport, atomic_write_text
from utils.perf import maybe_compile, to_channels_last
from utils.run import config_dict, git_sha, run_stage, save_config, setup_logging
from utils.schedule import apply_iteration_budget, default_workers, set_threads
from utils.seed import rng_state, seed_everything, seed_for_epoch, set_deterministic, set_rng_state
from utils.training import (PRECISIONS, MetricsCSV, NonFiniteLossError, autocast_dtype, check_same_settings,
                            grad_scaler, resume_path, save_on_master)

log = logging.getLogger("DUM.train")

MODELS = DEPTH_NETS  # networks/registry.py
DEV_COLUMNS = ("dev_acer", "dev_apcer", "dev_bpcer", "dev_threshold", "dev_eer", "dev_eer_threshold", "dev_auc",
               "dev_videos")
METRICS_COLUMNS = ("epoch", "lr", *LOSS_KEYS, "seconds", "images", *DEV_COLUMNS, "best")
# Settings that must not change when a run is resumed (the rest, e.g. --epochs or --workers, may).
RESUME_FIXED = ("model", "theta", "width", "image_size", "batch_size", "ratio", "seed", "train_list", "dev_list",
                "epoch_batches", "frame_draw")


def build_parser() -> argparse.ArgumentParser:
    """Every flag with its default and help, one per line, grouped (long, but only a list)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--crop-root", default="oulu_images_crop", help="crop tree written by DUM/make_dataset/crop_dataset.py")
    g.add_argument("--protocol-dir", default=None, help="folder holding Protocol_<p>/ (default <crop-root>/protocols)")
    g.add_argument("--protocol", type=protocol_arg, default=1,
                   help="OULU-NPU protocol 1-4, or a CSV protocol whose split column gives train and dev rows")
    g.add_argument("--fold", type=int, default=None, help="fold 1-6 of protocols 3 and 4")
    g.add_argument("--train-list", default="auto",
                   help="training list; auto = Train_g[_<fold>].txt / <csv stem>_g.csv (with generated lines) in the "
                        "protocol folder if present, else Train[_<fold>].txt / the CSV's train rows")
    g.add_argument("--dev-list", default="auto",
                   help="dev list for model selection; auto = Dev[_<fold>].txt / the CSV's dev rows")
    g.add_argument("--on-missing", default="skip", choices=("skip", "error"),
                   help="videos/live frames lacking crops or depth maps: skip (listed in skipped.csv) or stop")
    g.add_argument("--erase-fill", default="mean", choices=("mean", "black"),
                   help="RandomErasing fill: mean (fixed) or black (the original's uint8 truncation)")
    g.add_argument("--cutout-length", type=int, default=50, help="Cutout max side at 256 px (scaled with --image-size)")
    g.add_argument("--no-augment", action="store_true", help="train on plain crops (no augmentation)")
    g.add_argument("--frame-draw", default="original", choices=FRAME_DRAWS,
                   help="frames a real video draws from: original = numbers 1..n-1 of its n crops (frame n never "
                        "used, as the original); all = every crop")
    g.add_argument("--workers", type=int, default=default_workers(),
                   help="DataLoader workers per process (default min(4, CPU count - 1))")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="cdcn_u", choices=MODELS,
                   help="*_u = with the Depth Uncertainty Module (cdcn_u: CDCN+DUM, the paper's model); "
                        "cdcn, cdcnpp, depthnet, resnet18 = depth-supervised baselines without DUM")
    m.add_argument("--theta", type=float, default=0.7, help="central-difference weight of Conv2d_cd (CDCN family)")
    m.add_argument("--width", type=float, default=1.0, help="channel width multiplier (1.0 = published model)")
    m.add_argument("--image-size", type=int, default=256, help="input side; the depth map is image-size/8")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=1600,
                   help="training epochs; an epoch has the batches --epoch-batches says (utils/schedule.py)")
    o.add_argument("--iterations", type=int, default=0,
                   help="training length in batches instead (0 = off): --epochs, --eval-start, --eval-every and "
                        "--step-size are stretched together so the run lasts about this many iterations")
    o.add_argument("--batch-size", type=int, default=64, help="global batch (all processes together)")
    o.add_argument("--ratio", type=float, default=0.75, help="real fraction of each batch (48 of 64)")
    o.add_argument("--epoch-batches", default="original", choices=EPOCH_RULES,
                   help="batches per epoch: original = max(real, generated) // real per batch (the original's "
                        "rule); real = ceil(real / real per batch), every real item once per epoch")
    o.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    o.add_argument("--weight-decay", type=float, default=5e-5, help="Adam weight decay")
    o.add_argument("--step-size", type=int, default=500, help="StepLR step in epochs (stepped after each epoch)")
    o.add_argument("--gamma", type=float, default=0.5, help="StepLR decay")
    o.add_argument("--kl-lambda", type=float, default=0.001, help="weight of the KL term")
    o.add_argument("--gen-weight", type=float, default=0.1, help="weight of the generated part of the loss")
    o.add_argument("--amp", nargs="?", const="fp16", default="off", choices=(*PRECISIONS, "auto"),
                   help="mixed precision for training on CUDA: bf16, fp16 (also plain --amp), auto = bf16 where the "
                        "GPU has it; off (default) = float32. Dev scores stay float32")
    o.add_argument("--channels-last", action="store_true",
                   help="NHWC weights and batches (faster convolutions on GPU tensor cores; same results)")
    o.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (first epoch slower while it compiles; dev scoring "
                        "runs the plain model)")
    o.add_argument("--sync-bn", action="store_true",
                   help="SyncBatchNorm under torchrun (CUDA): BatchNorm statistics over the global batch")
    e = p.add_argument_group("evaluation and run")
    e.add_argument("--eval-every", type=int, default=50, help="evaluate dev every N epochs (and at the last epoch)")
    e.add_argument("--eval-start", type=int, default=200, help="first epoch that may be evaluated (original: 200)")
    e.add_argument("--patience", type=int, default=0,
                   help="stop after N dev evaluations without a strictly better dev ACER/EER (0 = off)")
    e.add_argument("--frame-batch", type=int, default=64, help="frames per forward pass when scoring a video")
    e.add_argument("--out-dir", default=None, help="run folder (default CDCN_U_P<p>[_F<fold>], the original --log name)")
    e.add_argument("--resume", default="", help="'last' (= <out-dir>/last.pt) or a checkpoint path to continue from")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    e.add_argument("--threads", type=int, default=0, help="torch/OpenCV CPU threads per process (0 = library default)")
    e.add_argument("--seed", type=int, default=0, help="seed (rank added under DDP; reseeded every epoch)")
    e.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    return p


def default_out_dir(args) -> Path:
    """--out-dir, else CDCN_U_P<p>[_F<fold>] (the original --log name) or runs/<csv stem>/<model>."""
    if args.out_dir:
        return Path(args.out_dir)
    name = f"{args.model.upper()}_P{args.protocol}" + (f"_F{args.fold}" if args.fold else "")
    return protocol_out_dir(args.protocol, args.fold, name, args.model)


def protocol_lists(args) -> tuple[Path, Path]:
    """(training list, dev list). Only these two are ever looked up: never the test list."""
    folder = Path(args.protocol_dir or Path(args.crop_root) / "protocols")
    train = resolve_list(args.protocol, "train", folder, args.fold, args.train_list, prefer_generated=True)
    with_gen = generated_list_name(args.protocol, args.fold)
    if args.train_list == "auto" and train.name.lower() != with_gen.lower():
        log.warning("%s not found in %s: training on real data only (%s)", with_gen, folder, train)
    dev = resolve_list(args.protocol, "dev", folder, args.fold, args.dev_list)
    return train, dev


def make_scheduler(optimizer, args):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)


def _selection_key(dev: dict) -> tuple[float, float]:
    return dev["dev_acer"], dev["dev_eer"]


def is_better(new: dict, best: dict | None) -> bool:
    """Strictly lower dev ACER (CDCN-compatible), then lower dev EER: what ``--patience`` waits for."""
    return best is None or _selection_key(new) < _selection_key(best)


def takes_best(new: dict, best: dict | None) -> bool:
    """Whether ``new`` becomes ``best.pt``: better, or equal (a tie goes to the later epoch)."""
    return best is None or _selection_key(new) <= _selection_key(best)


def run(args) -> dict:
    dist = init_distributed(args.device)
    out_dir = default_out_dir(args)
    setup_logging(out_dir, rank=dist.rank)
    try:
        with logging_redirect_tqdm():
            return train(args, dist, out_dir)
    finally:
        cleanup()


@dataclass
class Data:
    train_set: DepthTrainDataset
    dev_set: DepthEvalDataset
    sampler: RealGeneratedBatchSampler
    loader: DataLoader


def load_data(args, dist, out_dir: Path, map_size: int) -> Data:
    """Training set, real/generated batch sampler (sharded by rank) and dev set of the resolved lists."""
    train_list, dev_list = Path(args.train_list), Path(args.dev_list)
    report = SkipReport(out_dir / "skipped.csv")
    train_items = filter_split(read_protocol(train_list), "train")
    dev_items = filter_split(read_protocol(dev_list), "dev")
    log.info("train %s: %s", train_list, describe(train_items))
    log.info("dev %s: %s", dev_list, describe(dev_items))
    aug = None if args.no_augment else AugmentConfig(erase_fill=args.erase_fill, cutout_length=args.cutout_length)
    train_set = DepthTrainDataset(train_items, args.crop_root, "train", args.image_size, map_size, aug, args.seed,
                                  args.on_missing, report, str(train_list), frame_draw=args.frame_draw)
    dev_set = DepthEvalDataset(dev_items, args.crop_root, "dev", args.image_size, map_size, report, str(dev_list))
    if dist.is_main:
        report.write()
    if not len(dev_set):
        raise InputError(f"no dev video could be scored ({dev_list}); see {report.path}")
    sampler = RealGeneratedBatchSampler(train_set.real_indices, train_set.generated_indices, args.batch_size,
                                        args.ratio, args.seed, dist.rank, dist.world_size, args.epoch_batches)
    if 0 < len(train_set.generated_indices) < sampler.n_gen_per_batch:
        log.warning("only %d generated items for %d generated slots per batch: drawn with replacement",
                    len(train_set.generated_indices), sampler.n_gen_per_batch)
    apply_iteration_budget(args, len(sampler))
    if dist.is_main and args.iterations:
        save_config(args, out_dir)  # the resolved schedule
    log.info("batches per epoch %d: %d real + %d generated per batch (%d real, %d generated items)", len(sampler),
             sampler.n_real_per_batch, sampler.n_gen_per_batch, len(train_set.real_indices),
             len(train_set.generated_indices))
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=args.workers,
                        pin_memory=dist.device.type == "cuda")
    return Data(train_set, dev_set, sampler, loader)


@dataclass
class TrainState:
    """The state a checkpoint restores: networks, optimiser, schedule, scaler and model selection."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int = 1
    best: dict | None = None
    since_best: int = 0


def build_model(args, dist) -> torch.nn.Module:
    seed_everything(args.seed)  # same initial weights on every rank
    model = build_depth_net(args.model, theta=args.theta, width=args.width, image_size=args.image_size)
    model = model.to(dist.device)
    return to_channels_last(model) if args.channels_last else model


def build_state(model: torch.nn.Module, args, dist, amp_dtype) -> TrainState:
    """Optimiser, schedule (after load_data: --iterations may stretch --step-size) and scaler."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return TrainState(model, optimizer, make_scheduler(optimizer, args), grad_scaler(dist.device, amp_dtype))


def resume(args, state: TrainState, out_dir: Path, world_size: int) -> None:
    """Restore ``state`` from ``--resume`` (everything, so the run continues at epoch + 1)."""
    path = resume_path(args.resume, out_dir)
    if path is None:
        return
    ckpt = load_checkpoint(path, hint="--resume takes 'last' or a checkpoint written by DUM/train.py")
    check_same_settings(path, ckpt.get("config", {}), args, RESUME_FIXED)
    unwrap(state.model).load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.scaler.load_state_dict(ckpt["scaler"])
    if "rng" in ckpt and world_size == 1:
        set_rng_state(ckpt["rng"])
    state.start_epoch, state.best = int(ckpt["epoch"]) + 1, ckpt.get("best")
    state.since_best = int(ckpt.get("since_best", 0))
    log.info("resumed from %s at epoch %d", path, state.start_epoch)


def wrap_ddp(model: torch.nn.Module, args, dist) -> torch.nn.Module:
    """DDP (with SyncBatchNorm under ``--sync-bn``) for torchrun runs; the bare model otherwise."""
    if args.sync_bn and dist.distributed:
        if dist.device.type != "cuda":
            raise InputError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm has no CPU implementation")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if not dist.distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.device.index]
                                                     if dist.device.type == "cuda" else None)


def evaluate_dev(net, data: Data, args, dist, epoch: int, out_dir: Path) -> tuple[dict, EvalResult]:
    """Score the dev list with exactly the weights rank 0 saves, in float32.

    Under DDP each rank's BatchNorm running statistics drift apart during an epoch (DDP copies rank
    0's buffers only at the start of a forward), so they are first copied from rank 0; training is
    unchanged by this, as the next forward would copy them anyway. Scores are float32 even under
    ``--amp``: the stored threshold is applied to float32 scores by test.py and predict.py.
    """
    broadcast_buffers(unwrap(net))
    result = evaluate(net, data.dev_set, dist.device, args.frame_batch, args.workers, dist.rank, dist.world_size,
                      amp_dtype=None, desc=f"dev {epoch}")
    dev = {**dev_summary(result.rows), "epoch": epoch}
    if dist.is_main:
        write_scores(out_dir / "dev_scores.csv", result.rows)
        atomic_write_text(out_dir / "map_score_val.txt", original_format(result.rows))
        if result.problems:
            dev_report = SkipReport(out_dir / "dev_skipped.csv")
            dev_report.extend(result.problems)
            dev_report.write()
    return dev, result


def log_epoch(row: dict, dev: dict | None) -> None:
    log.info("epoch %d lr %.3g loss %.4f (mse %.4f cdl %.4f kl %.2f | gen mse %.4f cdl %.4f kl %.2f) "
             "sigma real %.3g gen %.3g %.1fs%s",
             row["epoch"], row["lr"], row["loss"], row["mse"], row["cdl"], row["kl"], row["gen_mse"], row["gen_cdl"],
             row["gen_kl"], row.get("sigma_real", float("nan")), row.get("sigma_gen", float("nan")), row["seconds"],
             "" if dev is None else f" | dev ACER {dev['dev_acer']:.4f} EER {dev['dev_eer']:.4f} "
             f"thr {dev['dev_threshold']:.4g}{' (best)' if row['best'] else ''}")


def train(args, dist, out_dir: Path) -> dict:
    """Set up, resume, then per epoch: train, step the schedule, score dev when due, save, early-stop.

    Extra per-epoch columns: put them into ``row`` before ``metrics.append``; MetricsCSV adds the columns.
    """
    amp_dtype = autocast_dtype(args.amp, dist.device)
    args.train_list, args.dev_list = map(str, protocol_lists(args))
    if dist.is_main:
        save_config(args, out_dir)
    set_deterministic(args.deterministic)
    set_threads(args.threads)
    model = build_model(args, dist)
    data = load_data(args, dist, out_dir, int(getattr(model, "map_size", args.image_size // 8)))
    state = build_state(model, args, dist, amp_dtype)
    resume(args, state, out_dir, dist.world_size)
    metrics = MetricsCSV(out_dir / "metrics.csv", METRICS_COLUMNS, state.start_epoch - 1,
                         float_format=None) if dist.is_main else None
    net = wrap_ddp(state.model, args, dist)
    train_net = maybe_compile(net, args.compile)  # dev scoring keeps `net`: no recompiles for other shapes
    last_eval, epoch = None, state.start_epoch - 1
    for epoch in range(state.start_epoch, args.epochs + 1):
        seed_for_epoch(args.seed, epoch, dist.rank)
        data.sampler.set_epoch(epoch)
        data.train_set.set_epoch(epoch)
        t0, lr = time.time(), state.optimizer.param_groups[0]["lr"]
        losses = train_one_epoch(train_net, data.loader, state.optimizer, state.scaler, dist.device, epoch,
                                 args.gen_weight, args.kl_lambda, amp_dtype, dist.is_main, args.channels_last)
        state.scheduler.step()  # per epoch, after training (docs/ORIGINAL.md 3.7)
        row = {"epoch": epoch, "lr": lr, **losses, "seconds": round(time.time() - t0, 2),
               "images": len(data.sampler) * args.batch_size}  # training images this epoch, all ranks together
        dev = None
        if epoch == args.epochs or (epoch >= args.eval_start and epoch % args.eval_every == 0):
            dev, _ = evaluate_dev(net, data, args, dist, epoch, out_dir)
            state.since_best = 0 if is_better(dev, state.best) else state.since_best + 1
            new_best = takes_best(dev, state.best)
            if new_best:
                state.best = dev
            row.update({**{k: dev[k] for k in DEV_COLUMNS}, "best": int(new_best)})
            last_eval = dev
        log_epoch(row, dev)
        save_on_master(lambda: checkpoint_state(state, epoch, args, dev), out_dir / "last.pt",
                       *([out_dir / "best.pt"] if row.get("best") else []))
        if metrics is not None:
            metrics.append(row)
        barrier()
        if dev is not None and args.patience and state.since_best >= args.patience:
            log.info("early stop at epoch %d: %d dev evaluations without improvement (best epoch %d)", epoch,
                     state.since_best, state.best["epoch"])
            break
    if state.best is not None:
        log.info("best epoch %d: dev ACER %.4f EER %.4f threshold %.6g", state.best["epoch"], state.best["dev_acer"],
                 state.best["dev_eer"], state.best["dev_threshold"])
    if dist.is_main:
        write_report(out_dir)  # report.html: config and the curves of metrics.csv (sigma_real, sigma_gen among them)
    return {"out_dir": str(out_dir), "best": state.best, "last_eval": last_eval, "epochs_run": epoch}


def checkpoint_state(state: TrainState, epoch: int, args, dev: dict | None) -> dict:
    """Everything a resume, test.py and prediction need; plain containers only (weights_only loads)."""
    ckpt = {
        "model": unwrap(state.model).state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "scaler": state.scaler.state_dict(), "epoch": epoch,
        "rng": rng_state(), "config": config_dict(args), "git_sha": git_sha(), "arch": args.model,
        "network": getattr(unwrap(state.model), "arch", None), "best": state.best, "since_best": state.since_best,
        "threshold": None, "threshold_eer": None, "threshold_source": None, "threshold_info": None,
        "dev_metrics": dev,
    }
    if dev is not None:  # thresholds belong to the weights they were measured with
        ckpt.update(threshold=dev["dev_threshold"], threshold_eer=dev["dev_eer_threshold"],
                    threshold_source=str(args.dev_list), threshold_info=threshold_info(dev, epoch))
    return ckpt


def threshold_info(dev: dict, epoch: int) -> dict:
    return {"epoch": epoch, "videos": dev["dev_videos"], "split": "dev",
            "threshold_rule": "CDCN-compatible: live iff score > threshold (dev EER point of sklearn's ROC)",
            "threshold_eer_rule": "ISO/IEC 30107-3 EER: bona fide iff score >= threshold_eer"}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, errors=(CheckpointError, NonFiniteLossError))


if __name__ == "__main__":
    main()
