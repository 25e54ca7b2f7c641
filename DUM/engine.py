"""One training epoch and the one ``evaluate`` that train.py (dev) and test.py (dev + test) share.

Scoring (docs/ORIGINAL.md 3.8): frame score = sum(mu) / sum(depth), the depth being the frame's raw
0-255 map at the network's map size; video score = mean of its frame scores. Every frame with a
crop is scored, as in the original: a frame without a depth map or with an all-black one (which
would divide by zero) is divided by the face template's depth sum instead (DUM/denominator.py) and
listed in ``EvalResult.fallback``. Only a frame whose network output is not finite is left out; a
video left with no scored frame gets a NaN score, a failure to acquire that the metrics count as an
error (DUM/metrics). Frames are pushed through in chunks of ``frame_batch`` frames, across video
boundaries (a frame-level dev set would otherwise cost one forward pass per frame), with BatchNorm
in eval mode, so chunking does not change the scores.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from DUM.dataset import DepthEvalDataset, first_item, normalize_image
from DUM.denominator import FALLBACK_NOTE, frame_score
from DUM.losses import dum_loss
from DUM.metrics import dev_metrics
from DUM.scores import ScoreRow
from utils.checkpoint import unwrap
from utils.dist import all_gather_object, all_reduce_mean
from utils.training import autocast, check_finite

log = logging.getLogger(__name__)

LOSS_KEYS = ("loss", "mse", "cdl", "kl", "gen_mse", "gen_cdl", "gen_kl")
# mean sigma = exp(logvar / 2) of the real and of the generated samples trained on in the epoch
# (DSDG: generated faces should get the larger uncertainty); NaN without a DUM head or such samples
SIGMA_KEYS = ("sigma_real", "sigma_gen")


def depth_outputs(out):
    """(prediction the losses see, mean map, logvar or None) of CDCN_u or a CDCN/CDCN++ baseline."""
    if hasattr(out, "logvar"):
        return out.sample, out.mu, out.logvar
    depth_map = out.map if hasattr(out, "map") else out[0]
    return depth_map, depth_map, None


def train_one_epoch(model, loader, optimizer, scaler, device: torch.device, epoch: int, gen_weight: float = 0.1,
                    kl_lambda: float = 0.001, amp_dtype: torch.dtype | None = None, is_main: bool = True,
                    channels_last: bool = False) -> dict:
    """Mean of each loss term over the epoch's batches (averaged over ranks under DDP), and the mean
    sigma of the real and of the generated samples (SIGMA_KEYS).

    ``amp_dtype``: autocast dtype (None = float32; see utils.training.autocast_dtype); ``channels_last``:
    NHWC input batches (for a model moved to channels-last). A non-finite loss on any rank stops every
    rank at the same step (utils.training.check_finite)."""
    model.train()
    sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64, device=device)
    sigma = torch.zeros(4, dtype=torch.float64, device=device)  # sum and count, real then generated
    n = 0
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not is_main, leave=False)
    for step, batch in enumerate(bar):
        images = batch["image"].to(device, non_blocking=True)            # [B,3,S,S]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["depth"].to(device, non_blocking=True)            # [B,M,M] in [0,1]
        generated = batch["generated"].to(device, non_blocking=True)     # [B] bool
        with autocast(device, amp_dtype):
            pred, mu, logvar = depth_outputs(model(images))
        losses = dum_loss(pred, mu, logvar, target, generated, gen_weight=gen_weight, kl_lambda=kl_lambda)
        check_finite(losses.total, epoch, step + 1,
                     lambda: f"loss {losses.total.item()}, mse {losses.mse.item()}, kl {losses.kl.item()}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses.total).backward()
        scaler.step(optimizer)
        scaler.update()
        sums += torch.stack([t.detach().double() for t in losses])
        if logvar is not None:
            per_item = (logvar.detach().float() / 2).exp().flatten(1).mean(1).double()  # [B]
            gen = generated.view(-1).bool()
            sigma += torch.stack([per_item[~gen].sum(), (~gen).sum().double(), per_item[gen].sum(), gen.sum().double()])
        n += 1
        if is_main:
            bar.set_postfix(loss=f"{losses.total.item():.4f}")
    means = all_reduce_mean(sums / max(n, 1))
    s_real, n_real, s_gen, n_gen = all_reduce_mean(sigma).tolist()  # a common factor: the ratios hold
    out = {k: float(v) for k, v in zip(LOSS_KEYS, means.tolist())}
    out.update(sigma_real=s_real / n_real if n_real else float("nan"), sigma_gen=s_gen / n_gen if n_gen else float("nan"))
    return out


@dataclass
class EvalResult:
    rows: list = field(default_factory=list)          # ScoreRow per video (NaN = not scorable), dataset order
    frames: list = field(default_factory=list)        # (video_id, frame, score) per scored frame
    problems: list = field(default_factory=list)      # (item, reason) of frames/videos not scored
    fallback: list = field(default_factory=list)      # "video/frame" scored with the face template's depth
    frame_stats: list = field(default_factory=list)   # with frame_stats=True: FrameStat per frame read


@dataclass
class FrameStat:
    """Uncertainty of one frame: the mean of sigma = exp(logvar / 2) over the map (NaN for a network
    without logvar), and the mean absolute error of mu against the training target (depth / 255 for
    bona fide, 0 for attacks)."""
    video_id: str
    frame: str
    label: int
    attack_type: str
    sigma: float
    abs_error: float


def _mu_sums(model, images: torch.Tensor, device: torch.device, amp_dtype: torch.dtype | None,
             targets: torch.Tensor | None = None):
    """uint8 frames ``[N,3,S,S]`` -> sum of the predicted mean map per frame ``[N]`` (float64, CPU).
    With ``targets`` ``[N,M,M]`` also ``[N,2]``: per-frame mean sigma and mean |mu - target|."""
    x = normalize_image(images.to(device, non_blocking=True))
    with autocast(device, amp_dtype):
        _, mu, logvar = depth_outputs(model(x))
    sums = mu.float().flatten(1).sum(1).double().cpu()
    if targets is None:
        return sums
    error = (mu.float().cpu() - targets.float()).abs().flatten(1).mean(1).double()
    sigma = (torch.full_like(error, float("nan")) if logvar is None
             else (logvar.float() / 2).exp().flatten(1).mean(1).double().cpu())
    return sums, torch.stack([sigma, error], 1)


class FrameBatcher:
    """Scores the frames of consecutive videos ``frame_batch`` at a time, across video boundaries.

    A frame-level dev set (one frame per video) otherwise costs one forward pass per frame. BatchNorm
    is in eval mode, so a frame's output does not depend on which frames share its batch.
    """

    def __init__(self, model, device: torch.device, frame_batch: int, amp_dtype: torch.dtype | None = None,
                 stats: bool = False):
        self.model, self.device, self.frame_batch = model, device, max(1, int(frame_batch))
        self.amp_dtype = amp_dtype
        self.pending: list[torch.Tensor] = []   # uint8 [n_i,3,S,S] not yet scored
        self.owners: list[int] = []             # video slot of every pending frame, in order
        self.mu: dict[int, list[torch.Tensor]] = {}
        # stats=True: add() takes each frame's training target; self.stats[slot] = [T,2] (sigma, |error|)
        self.targets: list[torch.Tensor] | None = [] if stats else None
        self.stats: dict[int, list[torch.Tensor]] = {}

    def add(self, slot: int, images: torch.Tensor, targets: torch.Tensor | None = None) -> None:
        self.mu.setdefault(slot, [])
        self.stats.setdefault(slot, [])
        if images.shape[0]:
            self.pending.append(images)
            self.owners += [slot] * images.shape[0]
            if self.targets is not None:
                self.targets.append(targets)
        while len(self.owners) >= self.frame_batch:
            self._run(self.frame_batch)

    def flush(self) -> dict[int, torch.Tensor]:
        """Score what is left; slot -> per-frame sum(mu) ``[T]`` of every video added."""
        while self.owners:
            self._run(min(len(self.owners), self.frame_batch))
        return {slot: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
                for slot, parts in self.mu.items()}

    def _run(self, n: int) -> None:
        frames = torch.cat(self.pending) if len(self.pending) > 1 else self.pending[0]
        stats = None
        if self.targets is not None:
            targets = torch.cat(self.targets) if len(self.targets) > 1 else self.targets[0]
            sums, stats = _mu_sums(self.model, frames[:n], self.device, self.amp_dtype, targets[:n])
            self.targets = [targets[n:]] if targets.shape[0] > n else []
        else:
            sums = _mu_sums(self.model, frames[:n], self.device, self.amp_dtype)
        self.pending = [frames[n:]] if frames.shape[0] > n else []
        owners, self.owners = self.owners[:n], self.owners[n:]
        start = 0
        while start < n:  # consecutive frames of one video form one part
            end = start
            while end < n and owners[end] == owners[start]:
                end += 1
            self.mu[owners[start]].append(sums[start:end])
            if stats is not None:
                self.stats[owners[start]].append(stats[start:end])
            start = end


def _video_result(item, names, mu_sum, depth_sum, bad, map_hw, has_depth=None) -> tuple:
    """(score or None, [(video, frame, score)], problems, fallback) of one video from its per-frame
    sums; ``has_depth`` says which frames had a map file (a missing one was reported by the dataset)."""
    problems, frames, fallback = list(bad), [], []
    for name, m, d, mapped in zip(names, mu_sum.tolist(), depth_sum.tolist(), has_depth or [True] * len(names)):
        s, template = frame_score(m, d, *map_hw)
        if s is None:
            problems.append((f"{item.video_id}/{name}", "non-finite network output: frame not scored"))
            continue
        frames.append((item.video_id, name, s))
        if template:
            fallback.append(f"{item.video_id}/{name}")
            if mapped:
                problems.append((f"{item.video_id}/{name}", f"all-black depth map: {FALLBACK_NOTE}"))
    score = sum(f[2] for f in frames) / len(frames) if frames else None
    if score is None:
        problems.append((item.video_id, "no scorable frame: video not scored"))
    return score, frames, problems, fallback


@torch.no_grad()
def evaluate(model, dataset: DepthEvalDataset, device: torch.device, frame_batch: int = 64, workers: int = 2,
             rank: int = 0, world_size: int = 1, amp_dtype: torch.dtype | None = None, desc: str = "eval",
             frame_stats: bool = False) -> EvalResult:
    """Score every video of ``dataset``; under DDP each rank takes every world_size-th video (no
    padding) and the results are gathered, so every rank returns the full result. Frames of
    consecutive videos share forward passes (:class:`FrameBatcher`). ``frame_stats`` also records
    each frame's uncertainty (``EvalResult.frame_stats``: every frame read, scorable or not)."""
    net = unwrap(model)
    was_training = net.training
    net.eval()
    indices = list(range(rank, len(dataset), world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=1, shuffle=False, num_workers=workers,
                        collate_fn=first_item, pin_memory=device.type == "cuda")
    batcher = FrameBatcher(net, device, frame_batch, amp_dtype, stats=frame_stats)
    videos = []
    for slot, (index, video) in enumerate(zip(indices, tqdm(loader, desc=desc, unit="video", disable=rank != 0,
                                                             leave=False))):
        # the training target: depth / 255 for bona fide, zeros for attacks (DUM/dataset.py)
        targets = video["depth"].float() / 255.0 * float(int(video["item"].label) == 1) if frame_stats else None
        batcher.add(slot, video["images"], targets)
        videos.append((index, video["item"], video["frames"], video["depth"].double().flatten(1).sum(1),
                       video["bad"], tuple(video["depth"].shape[-2:]), video.get("has_depth")))
    mu = batcher.flush()
    local = []
    for slot, (index, item, names, depth_sum, bad, map_hw, has_depth) in enumerate(videos):
        score, frames, problems, fallback = _video_result(item, names, mu[slot], depth_sum, bad, map_hw, has_depth)
        stats = []
        if frame_stats and batcher.stats[slot]:
            values = torch.cat(batcher.stats[slot]).tolist()
            known = [True] * len(names) if has_depth is None else [bool(h) for h in has_depth]
            # a frame without its own depth map has no target: its error is unknown (NaN)
            stats = [FrameStat(item.video_id, name, int(item.label), item.attack_type or "", s,
                               e if ok or int(item.label) != 1 else float("nan"))
                     for name, (s, e), ok in zip(names, values, known)]
        local.append((index, item, score, frames, problems, fallback, stats))
    gathered = sorted((r for part in all_gather_object(local) for r in part), key=lambda r: r[0])
    result = EvalResult()
    for _, item, score, frames, problems, fallback, stats in gathered:
        # An unscorable video stays in the results with a NaN score: the metrics count it as a failure
        # to acquire (FTA) instead of it silently vanishing from the denominators.
        result.rows.append(ScoreRow(item.video_id, int(item.label), item.attack_type or "",
                                    float("nan") if score is None else float(score)))
        result.frames += frames
        result.problems += problems
        result.fallback += fallback
        result.frame_stats += stats
    result.rows += [ScoreRow(it.video_id, int(it.label), it.attack_type or "", float("nan"))
                    for it in getattr(dataset, "unscorable", [])]
    net.train(was_training)
    return result


def original_format(rows) -> str:
    """The original ``<score> <label>`` score-file lines (label 1 live / 0 attack); NaN rows left out."""
    return "".join(f"{r.score} {r.label}\n" for r in rows if math.isfinite(r.score))


def dev_summary(rows) -> dict:
    """Per-epoch dev numbers for logging and model selection (dev scores only).

    ``dev_acer``/``dev_apcer``/``dev_bpcer`` at ``dev_threshold``: the CDCN-compatible row (dev EER
    point of sklearn's ROC, live iff score > t, pooled APCER; the original's ``val_ACER``).
    ``dev_eer`` at ``dev_eer_threshold``: the ISO/bob EER (bona fide iff score >= t).
    """
    m = dev_metrics(rows)  # videos without a score count as errors (DUM/metrics, FTA_RULES["error"])
    return {"dev_acer": float(m["cdcn_ACER"]), "dev_apcer": float(m["cdcn_APCER"]), "dev_bpcer": float(m["cdcn_BPCER"]),
            "dev_threshold": float(m["cdcn_threshold"]), "dev_eer": float(m["eer"]),
            "dev_eer_threshold": float(m["eer_threshold"]), "dev_auc": float(m["auc"]), "dev_videos": len(rows)}
