"""The one face-box format of the project: ``x y w h [score]`` in a one-line ``.dat`` file.

``x, y`` top-left corner, ``w, h`` size, in full-frame pixels (MTCNN's ``[x, y, width, height]``,
as the original ``bbox.py`` wrote it); ``score`` the detector confidence, optional. Every reader in
the project goes through :func:`read_box`; crops go through :func:`crop_face` so the generator
(scale 1.0) and the depth network (1.2-1.4 train, 1.3 dev/test) cut faces the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.io import InputError, atomic_write_text


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int
    score: float | None = None

    def scaled(self, scale: float) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) of the box scaled about its centre (floats, unclamped)."""
        cx, cy = self.x + self.w / 2.0, self.y + self.h / 2.0
        hw, hh = self.w * scale / 2.0, self.h * scale / 2.0
        return cx - hw, cy - hh, cx + hw, cy + hh


def format_box(box: Box) -> str:
    text = f"{int(box.x)} {int(box.y)} {int(box.w)} {int(box.h)}"
    return text + (f" {box.score:.6f}" if box.score is not None else "") + "\n"


def write_box(path, box: Box) -> None:
    atomic_write_text(path, format_box(box))


def parse_box(text: str, source: str = "<box>") -> Box:
    parts = text.split()
    if len(parts) not in (4, 5):
        raise InputError(f"{source}: a box file holds 'x y w h [score]', got {text.strip()!r}")
    try:
        x, y, w, h = (int(round(float(v))) for v in parts[:4])
        score = float(parts[4]) if len(parts) == 5 else None
    except ValueError:
        raise InputError(f"{source}: box values must be numbers, got {text.strip()!r}") from None
    if w <= 0 or h <= 0:
        raise InputError(f"{source}: box width and height must be positive, got {text.strip()!r}")
    return Box(x, y, w, h, score)


def read_box(path) -> Box:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no box file (run data/bbox.py for this frame)")
    return parse_box(path.read_text(encoding="utf-8", errors="replace"), str(path))


def crop_box(image_shape, box: Box, scale: float = 1.0) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) of the scaled box, floored and clamped to the image."""
    h, w = image_shape[:2]
    x1, y1, x2, y2 = box.scaled(scale)
    x1, y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    x2, y2 = min(w, int(np.floor(x2))), min(h, int(np.floor(y2)))
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"box {box} lies outside the {w}x{h} image")
    return x1, y1, x2, y2


def crop_face(image: np.ndarray, box: Box, scale: float = 1.0, size: int | None = 256,
              interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """Crop the box scaled about its centre by ``scale`` and resize to ``size`` x ``size``."""
    x1, y1, x2, y2 = crop_box(image.shape, box, scale)
    face = image[y1:y2, x1:x2]
    if size is not None:
        face = cv2.resize(face, (size, size), interpolation=interpolation)
    return face
