"""Atomic file writes, image reading with clear errors, and the per-run skip report.

Every stage writes its outputs through these helpers so that a crash or Ctrl-C never leaves a
half-written file behind, and a rerun can trust that any file that exists is complete.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np


class InputError(Exception):
    """Bad user input (missing file, malformed line, unreadable image). The message names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_permissions(fd_or_path) -> None:
    """mkstemp creates 0600 files; give outputs the permissions a plain ``open`` would (0666 & ~umask)."""
    mode = 0o666 & ~_umask()
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        default_permissions(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic_write(Path(path), data)


def atomic_write_text(path, text: str) -> None:
    _atomic_write(Path(path), text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_imwrite(path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode with OpenCV (by extension) and write atomically. ``image`` is BGR or grey uint8."""
    import cv2

    path = Path(path)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"could not encode image for {path}")
    _atomic_write(path, buf.tobytes())


def read_text_file(path, missing: str) -> str:
    """UTF-8 text of a list/protocol/score file; InputError naming the file when it is missing
    (``missing`` says what should be there) or not text."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc})") from None


def read_image(path, grey: bool = False) -> np.ndarray:
    """Read an image as BGR (or grey) uint8; raise InputError naming the file if it is unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{path}: not a readable image (empty, truncated or not an image)")
    return image


class SkipReport:
    """Collects items a stage skipped (path, reason) and writes them as CSV next to the outputs.

    A stage keeps going on per-item faults; the report is how nothing gets silently dropped.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.rows: list[tuple[str, str]] = []

    def add(self, item, reason: str) -> None:
        self.rows.append((str(item), str(reason)))

    def extend(self, rows: Iterable[tuple[str, str]]) -> None:
        for item, reason in rows:
            self.add(item, reason)

    def __len__(self) -> int:
        return len(self.rows)

    def write(self) -> Path:
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["item", "reason"])
        writer.writerows(sorted(self.rows))
        atomic_write_text(self.path, buf.getvalue())
        return self.path
