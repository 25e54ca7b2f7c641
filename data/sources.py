"""What a CSV protocol row points at (a video, a folder of images or one image) and how image rows
become frames (docs/DATA_LAYOUT.md).

Image rows are numbered like video frames: ``<video>_<n>_scene.jpg`` with ``n`` the **1-based
position of the image in its folder in natural file-name order** (``f2.png`` before ``f10.png``;
ties broken by the plain name), a single image being frame 1. ``--every K`` keeps positions 1,
1+K, ... and ``--max-frames M`` the first M kept, as for videos. Every image is decoded (EXIF
orientation applied, as OpenCV does) and re-encoded as JPEG at ``--jpeg-quality``, so all later
stages read one format. A finished row has a ``.done`` marker that lists its settings and source
files: a rerun skips it, and a folder whose images changed is redone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2

from data.frames import frame_name
from data.protocols import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ProtocolItem
from utils.io import atomic_imwrite, atomic_write_json

DONE_NAME = ".done"


def natural_key(name: str) -> tuple:
    """``"f10.png"`` -> ``("f", 10, ".png")``-like key so numbered files sort by number."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)), name


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (no sub-folders), in natural name order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)), key=lambda p: natural_key(p.name))


def row_source(item: ProtocolItem, root: Path) -> tuple[str, Path]:
    """(kind, path) of a row: kind ``video``, ``images`` (folder or one image) or ``missing`` / ``unknown``."""
    path = Path(item.path)
    path = path if path.is_absolute() else Path(root) / path
    if path.is_dir():
        return "images", path
    if not path.is_file():
        return "missing", path
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video", path
    if is_image(path):
        return "images", path
    return "unknown", path


def _done_matches(video_dir: Path, marker: dict, names: set[str]) -> bool:
    try:
        done = json.loads((video_dir / DONE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    on_disk = {p.name for p in video_dir.glob("*_scene.jpg")}
    return done == marker and on_disk == names


def extract_images(task: tuple) -> dict:
    """Image folder (or one image) -> frames; same result dict as ``extract_video``."""
    src, video_dir, every, max_frames, quality = task
    src, video_dir = Path(src), Path(video_dir)
    video = video_dir.name
    result = {"video": video, "source": str(src), "frames": 0, "reason": ""}
    images = list_images(src) if src.is_dir() else [src]
    chosen = [(n, p) for n, p in enumerate(images, 1) if (n - 1) % every == 0]
    if max_frames > 0:
        chosen = chosen[:max_frames]
    if not chosen:
        return {**result, "status": "failed", "reason": f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder"}
    marker = {"frames": len(chosen), "every": every, "max_frames": max_frames, "jpeg_quality": quality,
              "source": str(src), "files": [p.name for _, p in chosen]}
    names = {frame_name(video, n) for n, _ in chosen}
    if video_dir.is_dir() and _done_matches(video_dir, marker, names):
        return {**result, "status": "resumed", "frames": len(chosen)}
    (video_dir / DONE_NAME).unlink(missing_ok=True)
    bad = []
    for n, path in chosen:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            bad.append(path.name)
            continue
        atomic_imwrite(video_dir / frame_name(video, n), image, quality)
    if video_dir.is_dir():
        for stale in video_dir.glob("*_scene.jpg"):  # frames of an earlier run with other images/settings
            if stale.name not in names:
                stale.unlink()
    if bad:
        return {**result, "status": "failed", "frames": len(chosen) - len(bad),
                "reason": f"unreadable image(s) {', '.join(bad[:5])}: row not finished (fix or remove them)"}
    atomic_write_json(video_dir / DONE_NAME, marker)
    return {**result, "status": "done", "frames": len(chosen)}
