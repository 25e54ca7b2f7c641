"""Datasets of the depth network, reading the crop tree (docs/DATA_LAYOUT.md).

Training (docs/ORIGINAL.md 3.5): one frame per item per draw, chosen from the sorted listing of the
frames that actually exist (the original drew ids 1..n-1 blind and crashed on gaps), with the
original augmentation re-implemented in NumPy (imgaug no longer runs on NumPy >= 1.24):
Add(-40..40 per channel) -> GammaContrast(0.5..1.5) -> RandomErasing -> flip -> BGR->RGB ->
Cutout -> (x - 127.5) / 128. Target: depth / 255 at the model's map size for live items, zeros
for attacks (real and generated).

A live frame without a depth map, or a real live frame whose map is all black, is never trained on
as an all-zero map (the original did that silently; generated faces keep the all-black labels that
``generated.py --on-no-face zero`` writes and reports on purpose): with ``on_missing="skip"`` it is left out of the draw and
listed in the skip report, with ``"error"`` the dataset refuses to build. Randomness comes from ``(seed, epoch, draw_key)``
(see DUM/sampler.py), so it does not depend on DataLoader workers or DDP world size.

Evaluation (docs/ORIGINAL.md 3.8): one item per video holding every frame that has a crop, as the
original scored every frame; a frame without a depth map is scored with the face template's depth
(DUM/denominator.py) and reported; a video without any crop is a failure to acquire.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.frames import depth_name, frame_index, list_frames, split_dirs
from DUM.denominator import FALLBACK_NOTE
from utils.io import InputError, SkipReport, read_image

log = logging.getLogger(__name__)

# RandomErasing's fill in the original: CIFAR channel means on the [0, 1] scale, written into a
# uint8 image, which truncates them to 0 (black). ``erase_fill="mean"`` uses them on the 0-255 scale.
ERASE_MEAN_RGB = (0.4914, 0.4822, 0.4465)
REFERENCE_SIZE = 256  # image size at which the Cutout length is given


@dataclass(frozen=True)
class AugmentConfig:
    add: int = 40                        # Add((-40, 40), per_channel=True), integer offsets
    gamma: tuple[float, float] = (0.5, 1.5)
    erase_prob: float = 0.5
    erase_area: tuple[float, float] = (0.01, 0.05)  # fraction of the image area per rectangle
    erase_aspect: float = 0.5            # aspect drawn from U(r, 1/r)
    erase_max_attempts: int = 2          # 1 or 2 rectangles
    erase_fill: str = "mean"             # "mean" (fixed) or "black" (the original's behaviour)
    flip_prob: float = 0.5
    cutout_length: int = 50              # at 256 px; scaled with the image size


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """RGB 0-255 (any dtype) -> network input, (x - 127.5) / 128 (original)."""
    return (image.float() - 127.5) / 128.0


def add_per_channel(image: np.ndarray, rng: np.random.Generator, limit: int) -> np.ndarray:
    offset = rng.integers(-limit, limit + 1, size=image.shape[-1])
    return np.clip(image.astype(np.int16) + offset.astype(np.int16), 0, 255).astype(np.uint8)


def gamma_table(gamma: float) -> np.ndarray:
    """uint8 LUT of 255 * (v / 255) ** gamma, truncated, as imgaug's uint8 path."""
    table = (np.linspace(0.0, 1.0, 256, dtype=np.float32) ** np.float32(gamma)) * np.float32(255.0)
    return np.clip(table, 0, 255).astype(np.uint8)


def gamma_contrast(image: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return gamma_table(rng.uniform(low, high))[image]


def add_gamma(image: np.ndarray, rng: np.random.Generator, cfg: "AugmentConfig") -> np.ndarray:
    """``gamma_contrast(add_per_channel(image))`` with the same draws, as one per-channel LUT
    (both steps map each channel's values independently; one table lookup is ~5x faster)."""
    offset = rng.integers(-cfg.add, cfg.add + 1, size=image.shape[-1])
    table = gamma_table(rng.uniform(*cfg.gamma))
    lut = table[np.clip(np.arange(256)[:, None] + offset[None, :], 0, 255)]  # [256, C]
    return cv2.LUT(image, np.ascontiguousarray(lut.reshape(256, 1, -1)))


def random_erasing(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """In place on a BGR uint8 image (CDCN's RandomErasing: p, 1..max rectangles, area, aspect)."""
    if rng.random() >= cfg.erase_prob:
        return image
    if cfg.erase_fill == "black":
        fill = np.zeros(3, np.uint8)
    elif cfg.erase_fill == "mean":
        fill = np.round(np.array(ERASE_MEAN_RGB[::-1]) * 255.0).astype(np.uint8)  # BGR order
    else:
        raise ValueError(f"erase_fill must be 'mean' or 'black', got {cfg.erase_fill!r}")
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(1, cfg.erase_max_attempts + 1))):
        target = rng.uniform(*cfg.erase_area) * height * width
        aspect = rng.uniform(cfg.erase_aspect, 1.0 / cfg.erase_aspect)
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if w < width and h < height:
            y1, x1 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            image[y1:y1 + h, x1:x1 + w] = fill
    return image


def cutout(image: torch.Tensor, rng: np.random.Generator, length: int) -> torch.Tensor:
    """Zero a square of random half-side ``randint(1, length) // 2`` around a random centre (0-255 scale)."""
    _, h, w = image.shape
    y, x = int(rng.integers(h)), int(rng.integers(w))
    half = int(rng.integers(1, max(2, length))) // 2
    image[:, max(0, y - half):min(h, y + half), max(0, x - half):min(w, x + half)] = 0.0
    return image


def augment(image_bgr: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
            cfg: AugmentConfig) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 BGR HxWx3 and float depth MxM -> normalised RGB tensor [3,H,W] and (maybe flipped) depth."""
    image = add_gamma(image_bgr, rng, cfg)  # Add((-40, 40), per_channel) then GammaContrast((0.5, 1.5))
    image = random_erasing(image, rng, cfg)
    if rng.random() < cfg.flip_prob:
        image, depth = image[:, ::-1], depth[:, ::-1]
    tensor = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))).float()
    length = max(2, int(round(cfg.cutout_length * image.shape[0] / REFERENCE_SIZE)))
    tensor = cutout(tensor, rng, length)
    return normalize_image(tensor), np.ascontiguousarray(depth)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def _listdir(path: Path) -> set[str]:
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def _has_depth(path: Path) -> bool:
    """Whether a depth map has any non-zero pixel (unreadable maps count as having none)."""
    try:
        return bool(read_image(path, grey=True).any())
    except InputError:
        return False


FRAME_DRAWS = ("original", "all")


def drawable_frames(frames: list[str], generated: bool, rule: str = "original") -> list[str]:
    """The frames (sorted by number) a training item may draw from.

    ``original``: the original drew id U{1..n-1} for a real video with n crops numbered 1..n, so never
    its last frame; here a real video likewise never draws its highest-numbered frame (unless it has
    only one), and a generated folder draws ids 1..99 as the original did. ``all``: every frame."""
    if rule == "all":
        return frames
    if generated:
        return [f for f in frames if 1 <= frame_index(f) <= 99] or frames
    return frames[:-1] if len(frames) > 1 else frames


class DepthTrainDataset(Dataset):
    """Training items (protocol lines) of the crop tree; real and generated videos alike.

    ``items`` are ``data.protocols.ProtocolItem`` (video_id, label 1 live / 0 attack, generated...).
    """

    def __init__(self, items: Sequence, crop_root, split: str = "train", image_size: int = 256,
                 map_size: int = 32, augment_cfg: AugmentConfig | None = AugmentConfig(), seed: int = 0,
                 on_missing: str = "skip", report: SkipReport | None = None, source: str = "",
                 frame_draw: str = "original"):
        if on_missing not in ("skip", "error"):
            raise ValueError(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
        if frame_draw not in FRAME_DRAWS:
            raise ValueError(f"frame_draw must be one of {FRAME_DRAWS}, got {frame_draw!r}")
        self.frame_draw = frame_draw
        self.dirs = split_dirs(crop_root, split)
        self.image_size, self.map_size, self.seed = int(image_size), int(map_size), int(seed)
        self.augment_cfg = augment_cfg
        self.epoch = 0
        self.items, self.frames = [], []
        problems: list[tuple[str, str]] = []
        for item in items:
            frames, item_problems = self._usable_frames(item)
            problems += item_problems
            if frames:
                self.items.append(item)
                self.frames.append(frames)
            else:
                problems.append((f"{source}:{item.video_id}" if source else item.video_id,
                                 "no usable frame (crop image, and depth map for live videos): video not used"))
        if problems and on_missing == "error":
            shown = "; ".join(f"{p} ({r})" for p, r in problems[:5])
            raise InputError(f"{len(problems)} missing training inputs under {crop_root}: {shown}"
                             + (" ..." if len(problems) > 5 else "") + ". Use --on-missing skip to report and skip them.")
        if report is not None:
            report.extend(problems)
        if problems:
            log.warning("training data: %d frames/videos skipped (missing crops or live depth maps)%s", len(problems),
                        f", listed in {report.path}" if report is not None else "")
        if not self.items:
            raise InputError(f"no usable training video under {self.dirs['img']} ({source or 'protocol'})")
        self.real_indices = [i for i, it in enumerate(self.items) if not it.generated]
        self.generated_indices = [i for i, it in enumerate(self.items) if it.generated]

    def _usable_frames(self, item) -> tuple[list[str], list[tuple[str, str]]]:
        img_dir = self.dirs["img"] / item.video_id
        frames = drawable_frames(list_frames(img_dir), bool(item.generated), self.frame_draw)
        if item.label != 1:  # attacks train on zeros: no depth map needed
            return frames, []
        depth_dir = self.dirs["depth"] / item.video_id
        have = _listdir(depth_dir)
        usable, missing = [], []
        for f in frames:
            if depth_name(f) not in have:
                missing.append((str(depth_dir / depth_name(f)), "live frame without depth map: not used"))
            elif not item.generated and not _has_depth(depth_dir / depth_name(f)):
                # an all-black live target would teach "attack" (a map the mesh put on another face looks
                # like this); generated faces keep theirs: --on-no-face zero writes them on purpose
                missing.append((str(depth_dir / depth_name(f)), "live frame whose depth map is all black: "
                                                               "treated as missing, not used"))
            else:
                usable.append(f)
        return usable, missing

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, draw = key if isinstance(key, tuple) else (int(key), int(key))
        rng = np.random.default_rng([self.seed, self.epoch, int(draw), int(index)])
        item, frames = self.items[index], self.frames[index]
        frame = frames[int(rng.integers(len(frames)))]
        image = _resize(read_image(self.dirs["img"] / item.video_id / frame), self.image_size)
        if item.label == 1:
            depth = _resize(read_image(self.dirs["depth"] / item.video_id / depth_name(frame), grey=True),
                            self.map_size).astype(np.float32) / 255.0
        else:
            depth = np.zeros((self.map_size, self.map_size), np.float32)
        if self.augment_cfg is not None:
            tensor, depth = augment(image, depth, rng, self.augment_cfg)
        else:
            tensor = normalize_image(torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))))
        return {"image": tensor, "depth": torch.from_numpy(depth), "label": torch.tensor(int(item.label == 1)),
                "generated": torch.tensor(bool(item.generated)), "index": torch.tensor(index)}


class DepthEvalDataset(Dataset):
    """One item per video: every frame that has a crop image (that is, a face box), as the original
    scored every frame.

    Items hold uint8 RGB frames ``[T,3,S,S]`` (normalised on the device by the engine) and the raw
    0-255 depth maps ``[T,M,M]`` that form the score's denominator; a frame without a depth map gets
    zeros, and the engine divides its sum(mu) by the face template's depth (DUM/denominator.py).
    A video without any crop cannot be scored: it is listed in ``unscorable`` (a failure to acquire).
    """

    def __init__(self, items: Sequence, crop_root, split: str, image_size: int = 256, map_size: int = 32,
                 report: SkipReport | None = None, source: str = ""):
        self.dirs = split_dirs(crop_root, split)
        self.image_size, self.map_size = int(image_size), int(map_size)
        self.items, self.frames = [], []
        self.unscorable = []  # protocol videos with no scorable frame: failures to acquire (NaN score)
        problems: list[tuple[str, str]] = []
        for item in items:
            img_dir, depth_dir = self.dirs["img"] / item.video_id, self.dirs["depth"] / item.video_id
            frames = list_frames(img_dir)  # every frame with a face box has a crop: each one is scored
            have = _listdir(depth_dir)
            problems += [(str(img_dir / f), f"crop without depth map: {FALLBACK_NOTE}")
                         for f in frames if depth_name(f) not in have]
            names = {depth_name(f) for f in frames}
            problems += [(str(depth_dir / d), "depth map without crop image: not scored")
                         for d in sorted(have) if d.endswith("_depth1D.jpg") and d not in names]
            if frames:
                self.items.append(item)
                self.frames.append(frames)
            else:
                self.unscorable.append(item)
                problems.append((f"{source}:{item.video_id}" if source else item.video_id,
                                 f"no face crop under {img_dir.parent.parent}: video not scored (failure to acquire)"))
        self.problems = problems
        if report is not None:
            report.extend(problems)
        if problems:
            log.warning("%s: %d frames/videos not scored (missing crop or depth)%s", split, len(problems),
                        f", listed in {report.path}" if report is not None else "")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        images, depths, kept, bad, has_depth = [], [], [], [], []
        for frame in self.frames[index]:
            depth_path = self.dirs["depth"] / item.video_id / depth_name(frame)
            try:
                image = _resize(read_image(self.dirs["img"] / item.video_id / frame), self.image_size)
                # no map (the mesh failed): zeros, which the engine scores with the face template's depth
                depth = _resize(read_image(depth_path, grey=True), self.map_size) if depth_path.is_file() \
                    else np.zeros((self.map_size, self.map_size), np.uint8)
            except InputError as exc:
                bad.append((f"{item.video_id}/{frame}", f"unreadable: {exc}"))
                continue
            images.append(image[:, :, ::-1].transpose(2, 0, 1))
            depths.append(depth)
            kept.append(frame)
            has_depth.append(depth_path.is_file())
        s, m = self.image_size, self.map_size
        return {
            "images": torch.from_numpy(np.ascontiguousarray(np.stack(images))) if images
            else torch.zeros(0, 3, s, s, dtype=torch.uint8),
            "depth": torch.from_numpy(np.stack(depths).astype(np.float32)) if depths else torch.zeros(0, m, m),
            "frames": kept, "bad": bad, "item": item, "has_depth": has_depth,
        }


def first_item(batch: list):
    """DataLoader collate for one-video batches (a module-level function so workers can pickle it)."""
    return batch[0]


__all__ = ["AugmentConfig", "DepthTrainDataset", "DepthEvalDataset", "augment", "normalize_image", "first_item"]
