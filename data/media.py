"""Photos and videos as the data stages see them: the files a user names, their frames in order, and
the JPEG round trip every stage's stored image goes through.

Used by ``predict.py`` and ``export_onnx.py`` (calibration inputs): a folder is searched recursively
for images and videos; a video's frames keep their true 1-based decode index (``--every K`` takes
frames 1, 1+K, 1+2K, ...); an unreadable file or an undecodable video comes out as a
:class:`Frame` with a ``problem`` instead of stopping the run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from data.protocols import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from utils.io import InputError, read_image

log = logging.getLogger(__name__)

JPEG_QUALITY = 95      # what extract_frame.py, depth.py and crop_dataset.py store their JPEGs at


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """The pixels a stage reads back after storing ``image`` as JPEG at ``quality`` (BGR or grey)."""
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise InputError("could not JPEG-encode an image")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if image.ndim == 2 else cv2.IMREAD_COLOR)


@dataclass
class Frame:
    file: str
    frame: int | None            # 1-based index in the video (decode order); None for a still image
    image: np.ndarray | None     # BGR uint8 as the data stages would read it
    problem: str = ""            # why there is no image (unreadable file, undecodable video)
    video: bool = False


def collect_inputs(paths: Sequence) -> list[Path]:
    """Files named directly plus every image/video under the folders named (recursive, sorted).
    Paths that do not exist are an error naming all of them."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"input path(s) not found: {', '.join(missing)}")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                log.warning("%s: no images (%s) or videos (%s) inside", p, " ".join(IMAGE_SUFFIXES), " ".join(VIDEO_SUFFIXES))
            files += found
        else:
            files.append(p)
    return files


def video_frames(path: Path, every: int = 1, max_frames: int = 0, jpeg_quality: int = JPEG_QUALITY) -> Iterator[Frame]:
    """Frames 1, 1+K, 1+2K, ... (true 1-based index kept), each stored as extract_frame.py stores it."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        yield Frame(str(path), None, None, "cannot open video (corrupt, truncated or unsupported codec)", True)
        return
    n = kept = 0
    try:
        while max_frames <= 0 or kept < max_frames:
            if not cap.grab():
                break
            n += 1
            if (n - 1) % every:
                continue
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            kept += 1
            yield Frame(str(path), n, jpeg_roundtrip(frame, jpeg_quality) if jpeg_quality > 0 else frame, "", True)
    finally:
        cap.release()
    if kept == 0:
        yield Frame(str(path), None, None, "no frames could be decoded (empty or corrupt video)", True)


def iter_frames(files: Sequence[Path], every: int = 1, max_frames: int = 0,
                jpeg_quality: int = JPEG_QUALITY) -> Iterator[Frame]:
    """Every frame to score, file by file in order; unreadable files come as a Frame with a problem."""
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from video_frames(path, every, max_frames, jpeg_quality)
            continue
        try:
            yield Frame(str(path), None, read_image(path))
        except InputError as exc:
            yield Frame(str(path), None, None, str(exc))
