"""Frame and depth-map naming (see docs/DATA_LAYOUT.md) and listing of the per-video folders.

``<video>_<n>_scene.jpg`` with ``n`` the unpadded 1-based frame index; the depth map and box of a
frame share its stem: ``<video>_<n>_depth1D.jpg`` and ``<video>_<n>_scene.dat``.
"""
from __future__ import annotations

import re
from pathlib import Path

SPLITS = ("train", "dev", "test")
_FRAME_RE = re.compile(r"^(?P<video>.+)_(?P<n>\d+)_scene\.jpg$")
_GEN_RE = re.compile(r"^(?P<n>\d+)_scene\.jpg$")


def split_dirs(root, split: str) -> dict[str, Path]:
    """The three per-split trees of a data root: images, boxes, depth maps."""
    root = Path(root)
    return {"img": root / f"{split}_img_flod", "bbox": root / f"{split}_bbox_flod", "depth": root / f"{split}_depth_flod"}


def frame_name(video: str, n: int) -> str:
    return f"{video}_{int(n)}_scene.jpg"


def box_name(frame: str) -> str:
    """``<stem>_scene.jpg`` -> ``<stem>_scene.dat``."""
    return frame[: -len(".jpg")] + ".dat"


def depth_name(frame: str) -> str:
    """``<stem>_scene.jpg`` -> ``<stem>_depth1D.jpg``."""
    return frame[: -len("_scene.jpg")] + "_depth1D.jpg"


def frame_index(name: str) -> int:
    """The frame number of a real (``<video>_<n>_scene.jpg``) or generated (``<n>_scene.jpg``) frame."""
    m = _FRAME_RE.match(name) or _GEN_RE.match(name)
    if m is None:
        raise ValueError(f"not a frame name: {name!r} (expected <video>_<n>_scene.jpg)")
    return int(m.group("n"))


def list_frames(video_dir) -> list[str]:
    """Frame file names of one video folder, sorted by frame number (not by string)."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        return []
    names = [p.name for p in video_dir.iterdir() if p.name.endswith("_scene.jpg") and not p.name.startswith(".")]
    return sorted(names, key=lambda s: (frame_index(s), s))


def list_videos(img_dir) -> list[str]:
    """Video folder names under an image tree, sorted."""
    img_dir = Path(img_dir)
    if not img_dir.is_dir():
        return []
    return sorted(p.name for p in img_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
