"""Training loop of the DSDG dual-VAE generator (docs/ORIGINAL.md 2.6, 2.7), CPU or GPU, one process or DDP.

Faithful: the seven loss terms and their weights (generation.losses), the epoch-1 warm-up at 0.01,
Adam lr 2e-4 with default betas, no schedule, a frozen LightCNN whose gradients flow into the
reconstructions. Changed on purpose (docs/ORIGINAL.md 7, 8):
* the spoof-type classifier is trained (the original left it out of the optimizer);
  ``compat_untrained_classifier`` reproduces the original: it stays at its seeded random weights;
* one checkpoint dict (all four networks, optimizer, scaler, epoch, RNG state, config), resume from
  ``last.pt`` that replays the same numbers: every epoch reseeds from (seed, epoch, rank), the loader
  shuffles with a per-epoch generator and the live partners come from per-item seeded RNGs;
* the batch size is the total over all processes (the original's 240 over 4 GPUs); batch means in
  the losses are global (see generation.losses.batch_mean);
* training without the identity network is never a silent fallback: it needs ``no_identity_loss``.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

# load_generator: also importable from here, where it used to live
from generation.checkpoint import (CHECKPOINT_FORMAT, NETS, build_vae, load_generator, load_networks,  # noqa: F401
                                   model_config, parameter_checksum)
from generation.dataset import GenDataset, attack_types_in_list
from generation.diagnostics import COLUMNS as DIAGNOSTIC_COLUMNS
from generation.diagnostics import preview_diagnostics
from generation.losses import TERMS, LossWeights, generator_losses
from networks.light_cnn import identity_features, load_lightcnn
from networks.vae import decode_pairs
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from utils.dist import DistInfo, all_gather_object, all_reduce_mean, barrier
from utils.io import SkipReport, atomic_imwrite, atomic_write_json
from utils.run import config_dict, git_sha, save_config
from utils.seed import rng_state, seed_everything, seed_for_epoch, set_deterministic, set_rng_state, torch_generator
from utils.training import (MetricsCSV, autocast, autocast_dtype, check_finite, grad_scaler, resume_path,
                            tensorboard_writer)

log = logging.getLogger(__name__)

LIGHTCNN_URL = "https://github.com/AlfredXiangWu/LightCNN"
LIGHTCNN_FILE = "LightCNN_29Layers_V2_checkpoint.pth.tar"


class SetupError(Exception):
    """Something the user must fix before training can start (message says what and how)."""


# ----------------------------------------------------------------------------------------------
# identity network
def load_identity_net(path, device, width: float = 1.0, no_identity_loss: bool = False):
    """The frozen LightCNN-29 v2, or None when the user explicitly chose ``no_identity_loss``."""
    if no_identity_loss:
        log.warning("=" * 78)
        log.warning("--no-identity-loss: training WITHOUT the identity-preserving and pairing terms "
                    "(ip, pair). This is not the DSDG generator; its pairs need not share an identity.")
        log.warning("=" * 78)
        return None
    path = Path(path)
    if not path.is_file():
        raise SetupError(
            f"LightCNN identity network not found at {path}. The generator's identity losses need it.\n"
            f"  Get {LIGHTCNN_FILE} (LightCNN-29 v2) from {LIGHTCNN_URL} (README, 'Pre-trained models')\n"
            f"  and put it in ip_checkpoint/ (or pass --ip-model PATH).\n"
            f"  No download at hand? Train one on any identity-labelled face folder: python train_lightcnn.py --help\n"
            f"  To train without the identity terms anyway, say so explicitly: --no-identity-loss")
    try:
        net = load_lightcnn(path, device=device, width=width)
    except CheckpointError as exc:
        raise SetupError(f"{exc}\n  (expected the LightCNN-29 v2 layout of {LIGHTCNN_URL}; "
                         f"a checkpoint from train_lightcnn.py with --width {width} also works)") from None
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


# ----------------------------------------------------------------------------------------------
# model
class TrainForward(nn.Module):
    """The generator's training forward (docs/ORIGINAL.md 2.6 steps 1-3); DDP wraps this one module."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, spoof: torch.Tensor, live: torch.Tensor) -> dict:
        out = self.vae(spoof, live)  # DualVAEOutput: reconstructions [B,3,S,S], latents [B,hdim]
        # The classifier runs inside the wrapped forward so DDP sees its parameters used.
        return {**out._asdict(), "type_logits": self.vae.type_classifier(out.z_type)}


def trainable_parameters(vae: nn.Module, train_classifier: bool) -> list:
    """Adam's parameters: both encoders and the decoder, plus the classifier unless in compat mode."""
    nets = ["spoof_encoder", "live_encoder", "decoder"] + (["type_classifier"] if train_classifier else [])
    return [p for name in nets for p in getattr(vae, name).parameters()]


# ----------------------------------------------------------------------------------------------
# logging helpers
def save_grid(images: torch.Tensor, path) -> None:
    """[n,3,S,S] in [0,1] -> one PNG grid, 8 per row (as the original's torchvision grids)."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=8, padding=2)
    rgb = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    atomic_imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]))


# ----------------------------------------------------------------------------------------------
class GeneratorTrainer:
    """One training run: set-up (identity net, data, networks, resume), epochs, checkpoints, previews."""

    def __init__(self, args, dist_info: DistInfo):
        self.args, self.dist = args, dist_info
        self.device, self.is_main = dist_info.device, dist_info.is_main
        self.out_dir = Path(args.out_dir)
        self.preview_dir = Path(args.preview_dir) if args.preview_dir else self.out_dir / "previews"
        if args.batch_size % dist_info.world_size:
            raise SetupError(f"--batch-size {args.batch_size} (the total over all processes) must be divisible by "
                             f"the number of processes ({dist_info.world_size})")
        self.local_batch = args.batch_size // dist_info.world_size
        set_deterministic(args.deterministic)
        if self.device.type == "cuda" and not args.deterministic:
            torch.backends.cudnn.benchmark = True
        self.amp_dtype = autocast_dtype(args.amp, self.device)
        self.weights = LossWeights(mmd=args.lambda_mmd, ip=args.lambda_ip, pair=args.lambda_pair,
                                   type=args.lambda_type, ort=args.lambda_ort, warmup_epochs=args.warmup_epochs,
                                   warmup_factor=args.warmup_factor)
        self.train_classifier = not args.compat_untrained_classifier
        if not self.train_classifier:
            log.warning("--compat-untrained-classifier: the spoof-type classifier stays at its random initial "
                        "weights (the original code's behaviour)")
        # Identity network first: a missing file must stop the run before any data is touched.
        self.identity_net = load_identity_net(args.ip_model, self.device, args.ip_width, args.no_identity_loss)
        self._load_data()
        self._build_networks()
        self.start_epoch, self.last_losses = 1, {}
        self._resume()
        self.model: nn.Module = TrainForward(self.vae)
        if dist_info.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        batches = math.ceil(len(self.dataset) / dist_info.world_size / self.local_batch)
        self.batches_per_epoch = min(batches, args.limit_batches) if args.limit_batches else batches
        self.step = (self.start_epoch - 1) * self.batches_per_epoch
        self._open_logs()

    def _load_data(self) -> None:
        args = self.args
        self.report = SkipReport(self.out_dir / "skipped_inputs.csv")
        found = attack_types_in_list(args.train_list)
        if args.attack_types <= 0:  # --attack-types 0: from the data
            args.attack_types = found
            log.info("--attack-types %d, from the spoof file ids of %s", found, args.train_list)
            if self.is_main:
                save_config(args, self.out_dir)
        self.dataset = GenDataset(args.img_root, args.train_list, image_size=args.image_size, seed=args.seed,
                                  attack_types=args.attack_types, on_missing=args.on_missing, report=self.report,
                                  crop_scale=getattr(args, "crop_scale", 1.0))
        if self.is_main and len(self.report):
            self.report.write()

    def _build_networks(self) -> None:
        """The DualVAE (same initial weights on every rank: DDP also broadcasts rank 0's), Adam, scaler."""
        args = self.args
        seed_everything(args.seed)
        self.cfg = model_config(args)
        self.vae = build_vae(self.cfg).to(self.device)
        for p in self.vae.type_classifier.parameters():
            p.requires_grad_(self.train_classifier)
        self.optimizer = torch.optim.Adam(trainable_parameters(self.vae, self.train_classifier), lr=args.lr,
                                          betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        self.scaler = grad_scaler(self.device, self.amp_dtype)

    def _open_logs(self) -> None:
        """Rank 0: metrics CSVs (rows after the resume point dropped: they are replayed), TensorBoard,
        and the fixed preview noise (one set of samples to watch evolve)."""
        args = self.args
        self.metrics = self.epoch_metrics = self.writer = self.preview_noise = None
        if not self.is_main:
            return
        keep = self.start_epoch - 1
        self.metrics = MetricsCSV(self.out_dir / "metrics.csv",
                                  ["epoch", "iteration", "step", "total", *TERMS, "lr", "seconds"], keep)
        self.epoch_metrics = MetricsCSV(self.out_dir / "metrics_epoch.csv", ["epoch", "total", *TERMS, "seconds"],
                                        keep)
        self.writer = tensorboard_writer(self.out_dir, not args.no_tensorboard)
        if args.num_preview > 0:
            g = torch_generator(args.seed)
            self.preview_noise = (torch.randn(args.num_preview, args.hdim, generator=g),
                                  torch.randn(args.num_preview, args.hdim, generator=g))

    # -- resume ----------------------------------------------------------------------------------
    def _resume(self) -> None:
        path = resume_path(self.args.resume or "auto", self.out_dir, self.args.no_resume)
        if path is None:
            return
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise SetupError(f"{path}: not a train_generator.py checkpoint")
        if ckpt["model"] != self.cfg:
            raise SetupError(f"{path} holds a generator {ckpt['model']}, but this run asks for {self.cfg}; "
                             f"use the same --image-size/--width/--hdim/--attack-types or --no-resume")
        was_compat = bool(ckpt["config"].get("compat_untrained_classifier"))
        if was_compat == self.train_classifier:
            raise SetupError(f"{path} was trained with compat_untrained_classifier={was_compat}; "
                             f"resume with the same setting")
        load_networks(self.vae, ckpt, path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.last_losses = dict(ckpt.get("losses") or {})
        log.info("resumed from %s (epoch %d done)", path, self.start_epoch - 1)

    # -- one iteration -----------------------------------------------------------------------------
    def _losses(self, spoof, live, types, epoch: int) -> dict:
        with autocast(self.device, self.amp_dtype):
            out = self.model(spoof, live)
            feats = {}
            if self.identity_net is not None:
                with torch.no_grad():  # targets of the ip term are detached anyway
                    feats["feat_spoof"] = identity_features(self.identity_net, spoof)
                    feats["feat_live"] = identity_features(self.identity_net, live)
                # gradients flow through the frozen LightCNN into the reconstructions
                feats["feat_rec_spoof"] = identity_features(self.identity_net, out["rec_spoof"])
                feats["feat_rec_live"] = identity_features(self.identity_net, out["rec_live"])
        # Losses in float32: exp(logvar) and the sums over 6xSxS overflow in half precision.
        f32 = {k: v.float() for k, v in {**out, **feats}.items()}
        losses = generator_losses(spoof=spoof, live=live, types=types, weights=self.weights, epoch=epoch, **f32)
        return {"losses": losses, "rec_spoof": out["rec_spoof"], "rec_live": out["rec_live"]}

    def train_step(self, batch: dict, epoch: int, it: int) -> tuple[torch.Tensor, dict]:
        """One Adam step; returns ([total, *TERMS] averaged over ranks, on CPU) and the batch's outputs."""
        spoof = batch["spoof"].to(self.device, non_blocking=True)  # [b, 3, S, S] in [0, 1]
        live = batch["live"].to(self.device, non_blocking=True)
        types = batch["type"].to(self.device, non_blocking=True)
        result = self._losses(spoof, live, types, epoch)
        losses = result["losses"]
        total = losses["total"]
        check_finite(total, epoch, it, lambda: " ".join(f"{k}={float(v):.4g}" for k, v in losses.items()))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        values = torch.stack([total.detach()] + [losses[k].detach() for k in TERMS]).float()
        if self.dist.distributed:
            values = all_reduce_mean(values)
        return values.cpu(), {"index": batch["index"], "img_spoof": spoof, "img_live": live, "rec_spoof": result["rec_spoof"],
                              "rec_live": result["rec_live"]}

    # -- one epoch ---------------------------------------------------------------------------------
    def _loader(self, epoch: int) -> DataLoader:
        args, dist_info = self.args, self.dist
        self.dataset.set_epoch(epoch)
        sampler = None
        if dist_info.distributed:
            sampler = DistributedSampler(self.dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                         shuffle=True, seed=args.seed)
            sampler.set_epoch(epoch)
        # A fresh per-epoch generator: the shuffle and the workers' base seed replay after a resume.
        return DataLoader(self.dataset, batch_size=self.local_batch, shuffle=sampler is None, sampler=sampler,
                          num_workers=args.workers, pin_memory=self.device.type == "cuda", drop_last=False,
                          generator=torch_generator(args.seed * 1_000_003 + epoch), persistent_workers=False)

    def train_one_epoch(self, epoch: int) -> dict:
        """One epoch of Adam steps; rank 0 then logs the means, saves previews and the checkpoint."""
        args = self.args
        seed_for_epoch(args.seed, epoch, self.dist.rank)
        self.model.train()
        t0 = time.time()
        sums, count, preview = torch.zeros(len(TERMS) + 1, dtype=torch.float64), 0, None
        with logging_redirect_tqdm():
            bar = tqdm(itertools.islice(self._loader(epoch), self.batches_per_epoch), total=self.batches_per_epoch,
                       desc=f"epoch {epoch}/{args.epochs}", disable=not self.is_main, dynamic_ncols=True)
            for it, batch in enumerate(bar, 1):
                values, images = self.train_step(batch, epoch, it)
                sums += values.double()
                count += 1
                if preview is None and self.preview_noise is not None:
                    preview = {k: v[:args.num_preview].detach().float().cpu() for k, v in images.items()}
                if self.is_main:
                    self._log_iteration(epoch, it, dict(zip(["total", *TERMS], values.tolist())), t0, bar)
            bar.close()
        means = dict(zip(["total", *TERMS], (sums / max(count, 1)).tolist()))
        if self.is_main:
            seconds = time.time() - t0
            log.info("epoch %d done in %.1fs: %s", epoch, seconds, " ".join(f"{k}={v:.4g}" for k, v in means.items()))
            sims = {}
            if preview is not None and (epoch == 1 or epoch % args.test_epoch == 0 or epoch == args.epochs):
                sims = self.save_previews(epoch, preview)
                if self.writer is not None:
                    for k in (k for k in DIAGNOSTIC_COLUMNS if k in sims):
                        self.writer.add_scalar(f"identity/{k}", sims[k], epoch)
            self.epoch_metrics.append({"epoch": epoch, **means, "seconds": seconds,
                                       **{k: sims[k] for k in DIAGNOSTIC_COLUMNS if k in sims}})
            self.save(epoch, means)
        barrier()
        return means

    def _log_iteration(self, epoch: int, it: int, row: dict, t0: float, bar) -> None:
        self.metrics.append({"epoch": epoch, "iteration": it, "step": self.step, **row,
                             "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.time() - t0})
        if self.writer is not None:
            for k, v in row.items():
                self.writer.add_scalar(f"loss/{k}", v, self.step)
        bar.set_postfix(total=f"{row['total']:.4g}", rec=f"{row['rec']:.4g}")
        if self.args.print_freq and it % self.args.print_freq == 0:
            log.info("epoch %d iter %d/%d: %s", epoch, it, self.batches_per_epoch,
                     " ".join(f"{k}={v:.4g}" for k, v in row.items()))

    # -- outputs -----------------------------------------------------------------------------------
    def save_previews(self, epoch: int, images: dict) -> dict:
        """Inputs and reconstructions of the epoch's first batch, and samples of the fixed preview noise;
        with the identity network also the identity diagnostics (returned) and the labelled pair grid."""
        images = dict(images)
        users = [self.dataset.items[int(i)].user for i in images.pop("index")]
        self.vae.eval()  # no norm statistics or dropout in the generator: eval only documents intent
        fake_spoof, fake_live = decode_pairs(self.vae.decoder, self.preview_noise[0].to(self.device),
                                             self.preview_noise[1].to(self.device))
        self.vae.train()
        for name, grid in {**images, "fake_spoof": fake_spoof, "fake_live": fake_live}.items():
            save_grid(grid, self.preview_dir / f"Epoch_{epoch:03d}_{name}.png")
        if self.identity_net is None:
            return {}
        return preview_diagnostics(self.identity_net, self.vae.type_classifier, self.preview_noise[0], fake_live.cpu(),
                                   fake_spoof.cpu(), images["img_live"], images["img_spoof"], users,
                                   self.preview_dir / f"Epoch_{epoch:03d}_pairs_labelled.png")

    def save(self, epoch: int, losses: dict) -> None:
        state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": self.cfg,
                 **{name: getattr(self.vae, name).state_dict() for name in NETS},
                 "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                 "rng": rng_state(), "config": config_dict(self.args), "git_sha": git_sha(), "losses": losses}
        save_checkpoint(state, self.out_dir / "last.pt")
        if epoch == 1 or epoch % self.args.save_epoch == 0:
            save_checkpoint(state, self.out_dir / f"epoch_{epoch}.pt")

    def fit(self) -> dict:
        for epoch in range(self.start_epoch, self.args.epochs + 1):
            self.last_losses = self.train_one_epoch(epoch)
        checksum = parameter_checksum(self.vae)
        checksums = all_gather_object(checksum)
        log.info("parameter checksum (rank %d): %s", self.dist.rank, checksum)
        agree = len(set(checksums)) == 1
        if not agree:
            log.error("ranks disagree on the final weights: %s", checksums)
        result = {"epochs": self.args.epochs, "start_epoch": self.start_epoch, "losses": self.last_losses,
                  "checksums": checksums, "ranks_agree": agree, "world_size": self.dist.world_size,
                  "checkpoint": str(self.out_dir / "last.pt"), "skipped_inputs": len(self.report)}
        if self.is_main:
            self.metrics.close()
            self.epoch_metrics.close()
            if self.writer is not None:
                self.writer.close()
            atomic_write_json(self.out_dir / "train_summary.json", result)
        return result


def train(args, dist_info: DistInfo) -> dict:
    """Train the generator as configured by ``args`` (see train_generator.build_parser)."""
    return GeneratorTrainer(args, dist_info).fit()
