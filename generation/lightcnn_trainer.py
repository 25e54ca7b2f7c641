"""Train LightCNN-29 v2 as an identity classifier, for users without the published checkpoint.

Follows the LightCNN recipe (AlfredXiangWu/LightCNN ``train.py``): one grey channel in [0, 1], no
mean/std, faces resized to 144x144 and randomly cropped to 128x128 with a horizontal flip (a
centre crop for validation), cross-entropy on the ``fc2`` classifier, SGD lr 0.01 momentum 0.9
weight decay 1e-4 with the learning rate multiplied by 0.457305051927326 every 10 epochs
(``--optimizer adam`` instead uses Adam at --lr). The data is any ImageFolder-style tree,
``<data-root>/<identity>/<image>``. The result is exported in the published layout
(networks.light_cnn.save_lightcnn_checkpoint), which train_generator.py --ip-model reads.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from networks.light_cnn import LightCNN29v2, save_lightcnn_checkpoint
from utils.checkpoint import load_checkpoint, load_state_dict_strict
from utils.dist import DistInfo, all_reduce_mean, barrier
from utils.io import InputError, atomic_write_json
from utils.run import config_dict, git_sha
from utils.seed import rng_state, seed_everything, seed_for_epoch, set_deterministic, set_rng_state, torch_generator
from utils.training import (MetricsCSV, autocast, autocast_dtype, check_finite, grad_scaler, resume_path,
                            save_on_master)

log = logging.getLogger(__name__)

LOAD_SIZE, CROP_SIZE = 144, 128
LCNN_LR_GAMMA = 0.457305051927326  # LightCNN's adjust_learning_rate factor (every 10 epochs)


def transforms(train: bool):
    from torchvision import transforms as T

    crop = [T.RandomCrop(CROP_SIZE), T.RandomHorizontalFlip()] if train else [T.CenterCrop(CROP_SIZE)]
    return T.Compose([T.Grayscale(1), T.Resize((LOAD_SIZE, LOAD_SIZE)), *crop, T.ToTensor()])


def image_folder(root, train: bool, classes: list[str] | None = None):
    """ImageFolder over ``root/<identity>/*``; ``classes`` pins the label order (validation set)."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: face folder not found (expected <root>/<identity>/<image files>)")
    try:
        ds = ImageFolder(str(root), transform=transforms(train))
    except (FileNotFoundError, RuntimeError) as exc:  # no class folders / no images
        raise InputError(f"{root}: {exc}") from None
    if classes is not None:
        unknown = sorted(set(ds.classes) - set(classes))
        if unknown:
            raise InputError(f"{root}: identities not in the training set: {unknown[:5]}")
        index = {c: i for i, c in enumerate(classes)}
        ds.samples = [(p, index[ds.classes[t]]) for p, t in ds.samples]
        ds.targets = [t for _, t in ds.samples]
        ds.classes, ds.class_to_idx = list(classes), index
    return ds


class _Logits(nn.Module):
    """DDP calls ``forward``; the classifier's (logits, feature) come from ``forward_logits``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_logits(x)[0]


@torch.no_grad()
def evaluate(net, loader, device) -> float:
    net.eval()
    correct = total = 0
    for images, labels in loader:
        logits = net.forward_logits(images.to(device))[0]
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    net.train()
    return correct / max(total, 1)


@dataclass
class TrainState:
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int = 1


def load_data(args, world: int):
    """(training ImageFolder, validation ImageFolder or None, identity names)."""
    train_set = image_folder(args.data_root, train=True)
    classes = list(train_set.classes)
    if len(classes) < 2:
        raise InputError(f"{args.data_root}: need at least two identity folders, found {len(classes)}")
    val_set = image_folder(args.val_root, train=False, classes=classes) if args.val_root else None
    log.info("LightCNN data: %d images of %d identities%s", len(train_set), len(classes),
             f", {len(val_set)} validation images" if val_set is not None else "")
    if args.batch_size % world:
        raise InputError(f"--batch-size {args.batch_size} (total) must be divisible by {world} processes")
    return train_set, val_set, classes


def build_state(args, num_classes: int, device: torch.device, amp_dtype) -> TrainState:
    seed_everything(args.seed)
    net = LightCNN29v2(num_classes=num_classes, width=args.width).to(device)
    lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 1e-3)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step, gamma=args.lr_gamma)
    return TrainState(net, optimizer, scheduler, grad_scaler(device, amp_dtype))


def resume(args, state: TrainState, classes: list[str]) -> None:
    path = resume_path(args.resume, args.out_dir, args.no_resume)
    if path is None:
        return
    ckpt = load_checkpoint(path, map_location="cpu", hint="(written by train_lightcnn.py)")
    if ckpt.get("classes") != classes or ckpt.get("width") != args.width:
        raise InputError(f"{path}: trained on other identities or --width; use --no-resume to start over")
    load_state_dict_strict(state.net, ckpt["model"], source=str(path))
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    state.start_epoch = int(ckpt["epoch"]) + 1
    log.info("resumed from %s (epoch %d done)", path, state.start_epoch - 1)


def epoch_loader(train_set, args, dist_info: DistInfo, epoch: int) -> DataLoader:
    sampler = None
    if dist_info.distributed:
        sampler = DistributedSampler(train_set, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True,
                                     seed=args.seed)
        sampler.set_epoch(epoch)
    return DataLoader(train_set, batch_size=args.batch_size // dist_info.world_size, shuffle=sampler is None,
                      sampler=sampler, num_workers=args.workers, pin_memory=dist_info.device.type == "cuda",
                      generator=torch_generator(args.seed * 1_000_003 + epoch))


def train_one_epoch(model, state: TrainState, loader, batches: int, epoch: int, args, dist_info: DistInfo,
                    amp_dtype) -> tuple[float, float]:
    """(mean loss, accuracy) over the epoch's batches, summed over ranks."""
    device, world = dist_info.device, dist_info.world_size
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(itertools.islice(loader, batches), total=batches, desc=f"lightcnn epoch {epoch}/{args.epochs}",
               disable=not dist_info.is_main, dynamic_ncols=True)
    for it, (images, labels) in enumerate(bar, 1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(images)  # [b, classes]
        loss = F.cross_entropy(logits.float(), labels)
        check_finite(loss, epoch, it)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        stats = torch.tensor([loss.item() * len(labels), (logits.argmax(1) == labels).sum().item(), len(labels)],
                             dtype=torch.float64)
        stats = all_reduce_mean(stats.to(device)).cpu() * world if dist_info.distributed else stats
        loss_sum, correct, seen = loss_sum + stats[0].item(), correct + stats[1].item(), seen + stats[2].item()
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        if args.print_freq and it % args.print_freq == 0:
            log.info("epoch %d iter %d/%d loss %.4f acc %.3f", epoch, it, batches, loss_sum / seen, correct / seen)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def save(state: TrainState, epoch: int, args, classes: list[str], export: Path, row: dict) -> None:
    """last.pt (everything a resume needs) and the published-layout export, on rank 0."""
    save_on_master(lambda: {
        "format": "lightcnn-train/1", "epoch": epoch, "model": state.net.state_dict(),
        "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None, "rng": rng_state(),
        "classes": classes, "width": args.width, "config": config_dict(args), "git_sha": git_sha()},
        Path(args.out_dir) / "last.pt")
    val_acc = row["val_acc"]
    save_lightcnn_checkpoint(state.net, export, epoch,
                             prec1=100.0 * (val_acc if val_acc == val_acc else row["train_acc"]))


def train_lightcnn(args, dist_info: DistInfo) -> dict:
    device, is_main = dist_info.device, dist_info.is_main
    out_dir = Path(args.out_dir)
    export = Path(args.export) if args.export else out_dir / "LightCNN_29Layers_V2_checkpoint.pth.tar"
    set_deterministic(args.deterministic)
    amp_dtype = autocast_dtype(args.amp, device)
    train_set, val_set, classes = load_data(args, dist_info.world_size)
    state = build_state(args, len(classes), device, amp_dtype)
    resume(args, state, classes)
    model: nn.Module = _Logits(state.net)
    if dist_info.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    val_loader = (DataLoader(val_set, batch_size=args.batch_size // dist_info.world_size, shuffle=False,
                             num_workers=args.workers) if val_set is not None and is_main else None)
    metrics = MetricsCSV(out_dir / "metrics.csv", ["epoch", "loss", "train_acc", "val_acc", "lr", "seconds"],
                         state.start_epoch - 1) if is_main else None
    batches = math.ceil(len(train_set) / args.batch_size)
    if args.limit_batches:
        batches = min(batches, args.limit_batches)
    result = {"epochs": args.epochs, "start_epoch": state.start_epoch, "export": str(export), "classes": len(classes)}
    for epoch in range(state.start_epoch, args.epochs + 1):
        seed_for_epoch(args.seed, epoch, dist_info.rank)
        loader = epoch_loader(train_set, args, dist_info, epoch)
        t0, lr_now = time.time(), state.optimizer.param_groups[0]["lr"]
        with logging_redirect_tqdm():
            loss, train_acc = train_one_epoch(model, state, loader, batches, epoch, args, dist_info, amp_dtype)
        state.scheduler.step()
        val_acc = evaluate(state.net, val_loader, device) if val_loader is not None else float("nan")
        row = {"epoch": epoch, "loss": loss, "train_acc": train_acc, "val_acc": val_acc, "lr": lr_now,
               "seconds": time.time() - t0}
        result.update(row)
        if is_main:
            log.info("epoch %d: loss %.4f train acc %.3f val acc %.3f (%.1fs)", epoch, loss, train_acc, val_acc,
                     row["seconds"])
            metrics.append(row)
            save(state, epoch, args, classes, export, row)
        barrier()
    if is_main:
        atomic_write_json(out_dir / "train_summary.json", result)
        log.info("LightCNN checkpoint (published layout): %s; use it with train_generator.py --ip-model %s "
                 "--ip-width %s, or copy it into ip_checkpoint/", export, export, args.width)
    return result
