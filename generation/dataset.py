"""Generator training data: spoof frames of the generator list, each paired with a live frame.

Faithful to the original ``GenDataset_s`` (docs/ORIGINAL.md 2.1): the items are the spoof lines (domain 0) of
the list ``<video>/<frame> <user> <domain> <file id>``; the spoof type is file id 2..5 -> 0..3; the
live partner is a random live frame (domain 1) of the same user, drawn again at every access; both
images are cut with their own box, resized (cv2 bilinear), RGB in [0, 1], no augmentation, no
normalisation. The original cut at 1.0x the box; train_generator.py's ``--crop-scale`` (default 1.3)
frames the faces like the depth network's real crops, so generated faces match them.

What changed, and why:
* The partner draw comes from a per-item RNG seeded by ``(seed, epoch, index)`` instead of the
  unseeded global one, so a run (and a resumed run) sees the same pairs. A new epoch still draws new
  partners, as the original did.
* The original loader crashed on a missing box or image (docs/ORIGINAL.md 1.5). Here the list is checked up
  front: a listed frame whose image or box file is missing is dropped and reported in a SkipReport
  CSV (``on_missing="skip"``, the default), or stops the run with the file named
  (``on_missing="error"``). A spoof frame whose user has no live frame left is dropped and reported
  the same way. An image that exists but cannot be decoded, or a box outside its image, raises
  InputError naming the file when it is read: that is a broken file the user must replace.
* A spoof line with a file id outside 2..5 (the original printed a message and called ``exit()``)
  raises InputError with ``file:line``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.boxes import crop_face, read_box
from data.frames import box_name, split_dirs
from utils.io import InputError, SkipReport, read_image

log = logging.getLogger(__name__)

# OULU-NPU file ids of the four attack types (print 1, print 2, replay 1, replay 2) -> classes 0..3.
FIRST_SPOOF_FILE_ID = 2


@dataclass(frozen=True)
class GenListEntry:
    path: str        # "<video>/<video>_<n>_scene.jpg", relative to the image tree
    user: str        # two-digit user id, kept as text (the original compared strings)
    domain: int      # 1 live, 0 spoof
    file_id: int     # OULU file id 1..5
    source: str      # "list.txt:LINE" for error messages

    @property
    def spoof_type(self) -> int:
        return self.file_id - FIRST_SPOOF_FILE_ID


def read_gen_list(path, attack_types: int = 4) -> list[GenListEntry]:
    """Parse a generator training list; any malformed line raises InputError with ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: generator training list not found (make it with data/make_train_list.py)")
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            where = f"{path}:{line_no}"
            parts = text.split()
            if len(parts) != 4:
                raise InputError(f"{where}: expected '<video>/<frame> <user> <domain> <file id>', got {text!r}")
            rel, user, domain_s, file_s = parts
            try:
                domain, file_id = int(domain_s), int(file_s)
            except ValueError:
                raise InputError(f"{where}: domain and file id must be integers, got {text!r}") from None
            if domain not in (0, 1):
                raise InputError(f"{where}: domain must be 1 (live) or 0 (spoof), got {domain}")
            if domain == 0 and not (FIRST_SPOOF_FILE_ID <= file_id < FIRST_SPOOF_FILE_ID + attack_types):
                raise InputError(
                    f"{where}: spoof file id must be {FIRST_SPOOF_FILE_ID}..{FIRST_SPOOF_FILE_ID + attack_types - 1} "
                    f"(one per attack type), got {file_id}")
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise InputError(f"{where}: frame path must be relative to the image tree, got {rel!r}")
            entries.append(GenListEntry(rel, user, domain, file_id, where))
    if not entries:
        raise InputError(f"{path}: the generator training list is empty")
    return entries


def attack_types_in_list(path) -> int:
    """Spoof classes a generator list needs: highest spoof file id - 1 (OULU-NPU: 4; make_train_list
    numbers a CSV's attack types 2, 3, ... in sorted order). Warns when there is only one, because the
    spoof-type loss (cross-entropy over a single class) is then always 0."""
    entries = read_gen_list(path, attack_types=1_000_000)
    types = sorted({e.spoof_type for e in entries if e.domain == 0})
    if not types:
        raise InputError(f"{path}: no spoof line (domain 0) in the generator training list")
    if len(types) == 1:
        log.warning("%s: one attack type only: the spoof-type classification loss is 0 (cross-entropy over one "
                    "class), so --lambda-type has no effect and the spoof-pattern latent is not pushed to "
                    "separate attack types", path)
    return types[-1] + 1


def to_tensor_rgb(image_rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> [3, H, W] float in [0, 1] (what ToTensor did)."""
    return torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float().div_(255.0)


class GenDataset(Dataset):
    """Spoof items of the generator list with a seeded random live partner of the same user.

    ``img_root`` holds ``train_img_flod/`` and ``train_bbox_flod/`` (docs/DATA_LAYOUT.md). An item is
    ``{"spoof": [3,S,S], "live": [3,S,S], "type": long, "index": long}``.
    Call :meth:`set_epoch` before each epoch (new partners per epoch, reproducible).
    """

    def __init__(self, img_root, entries: Sequence[GenListEntry] | str | Path, image_size: int = 256,
                 seed: int = 0, attack_types: int = 4, on_missing: str = "skip",
                 report: SkipReport | None = None, split: str = "train", crop_scale: float = 1.0):
        if on_missing not in ("skip", "error"):
            raise ValueError(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
        if not isinstance(entries, (list, tuple)):
            entries = read_gen_list(entries, attack_types)
        dirs = split_dirs(img_root, split)
        self.img_dir, self.box_dir = dirs["img"], dirs["bbox"]
        if not self.img_dir.is_dir():
            raise InputError(f"{self.img_dir}: image tree not found (set --img-root to the folder holding "
                             f"{split}_img_flod/ and {split}_bbox_flod/)")
        self.image_size, self.crop_scale = int(image_size), float(crop_scale)
        self.seed = int(seed)
        self.epoch = 0
        self.report = report
        self.skipped: list[tuple[str, str]] = []

        kept = []
        for e in entries:
            missing = [p for p in (self.img_dir / e.path, self.box_dir / box_name(e.path)) if not p.is_file()]
            if missing:
                reason = f"{e.source}: missing {' and '.join(str(p) for p in missing)}"
                if on_missing == "error":
                    raise InputError(reason)
                self._skip(e.path, reason)
                continue
            kept.append(e)

        live_by_user: dict[str, list[GenListEntry]] = {}
        for e in kept:
            if e.domain == 1:
                live_by_user.setdefault(e.user, []).append(e)
        self.live_by_user = live_by_user
        self.items: list[GenListEntry] = []
        for e in kept:
            if e.domain != 0:
                continue
            if e.user not in live_by_user:
                self._skip(e.path, f"{e.source}: user {e.user} has no live frame in the list to pair with")
                continue
            self.items.append(e)
        if self.skipped:
            log.warning("generator list: %d frame(s) skipped (missing files or no live partner)%s",
                        len(self.skipped), f", see {report.path}" if report is not None else "")
        if not self.items:
            raise InputError("no usable spoof frame in the generator list (every one was missing a file or "
                             "had no live frame of its user)")
        counts = np.bincount([e.spoof_type for e in self.items], minlength=attack_types)
        log.info("generator data: %d spoof items (per type %s), %d live frames of %d users",
                 len(self.items), counts.tolist(), sum(len(v) for v in live_by_user.values()), len(live_by_user))

    def _skip(self, item: str, reason: str) -> None:
        self.skipped.append((item, reason))
        if self.report is not None:
            self.report.add(item, reason)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def partner(self, index: int) -> GenListEntry:
        """The live partner of item ``index`` in the current epoch (deterministic)."""
        spoof = self.items[index]
        candidates = self.live_by_user[spoof.user]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return candidates[int(rng.integers(len(candidates)))]

    def load(self, entry: GenListEntry) -> torch.Tensor:
        img_path = self.img_dir / entry.path
        box_path = self.box_dir / box_name(entry.path)
        image = read_image(img_path)
        box = read_box(box_path)
        try:
            face = crop_face(image, box, scale=self.crop_scale, size=self.image_size, interpolation=cv2.INTER_LINEAR)
        except InputError as exc:
            raise InputError(f"{img_path} with {box_path}: {exc}") from None
        return to_tensor_rgb(cv2.cvtColor(face, cv2.COLOR_BGR2RGB))

    def __getitem__(self, index: int) -> dict:
        spoof = self.items[index]
        return {"spoof": self.load(spoof), "live": self.load(self.partner(index)),
                "type": torch.tensor(spoof.spoof_type, dtype=torch.long),
                "index": torch.tensor(index, dtype=torch.long)}
