"""Frames per second of MTCNN face boxes (data/mtcnn.py) and of the whole stage (data/bbox.py).

Frames are real photos (tests/fixtures/samples, scikit-image's astronaut, matplotlib's Grace Hopper)
scaled and padded into ``--size`` (640x480, a VGA frame; 1920x1080 for OULU-NPU's videos), torch
limited to ``--threads`` (2: the project's CPU budget). Modes:

* ``detect``: ``MTCNN.detect_batch`` on batches of ``--batch-sizes`` frames, for each ``--min-faces``
  and each ``--max-sides`` (0: full resolution; N: frames shrunk to a longer side of N first)
* ``stage`` : ``data/bbox.py`` end to end on a temporary tree of ``--stage-frames`` JPEG frames
  (JPEG decode in threads, detection, atomic box writes), from its summary.json, for each ``--max-sides``

    python bench/bench_bbox.py [--threads 2] [--seconds 8] [--out bench_bbox.json]
    python bench/bench_bbox.py --size 1920x1080 --max-sides 0 960 --min-faces 40 --batch-sizes 4

Reported per setting: frames/s from wall time, and CPU seconds per frame (all threads of the
process). Other jobs on the machine inflate wall times (the load average is logged): on a shared
machine 2 x frames / CPU seconds is the better estimate of what 2 idle cores give.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import os
import tempfile
import time

import cv2
import numpy as np
import torch

from data import bbox
from data.mtcnn import MTCNN
from utils.io import atomic_write_json
from utils.run import setup_logging

log = logging.getLogger(__name__)
SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "samples"  # the three photos the repo ships


def load_photos(samples_dir: Path) -> dict[str, np.ndarray]:
    """RGB photos with one face each."""
    import matplotlib.cbook
    import skimage.data

    photos = {p.stem: cv2.imread(str(p)) for p in sorted(Path(samples_dir).glob("*.jpg"))}
    photos = {k: cv2.cvtColor(v, cv2.COLOR_BGR2RGB) for k, v in photos.items() if v is not None}
    photos["astronaut"] = skimage.data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR),
                                              cv2.COLOR_BGR2RGB)
    return photos


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale into ``width`` x ``height`` and pad with black, as a video frame of that size
    (upscaled with cv2.INTER_CUBIC: the photos are smaller than a full-HD frame)."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    size = (int(round(w * s)), int(round(h * s)))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
    out[y:y + scaled.shape[0], x:x + scaled.shape[1]] = scaled
    return out


def bench_detect(frames: list[np.ndarray], min_face: float, batch: int, seconds: float, max_side: int = 0) -> dict:
    detector = MTCNN(min_face_size=min_face, device="cpu", max_side=max_side)
    stack = [frames[i % len(frames)] for i in range(batch)]
    detector.detect_batch(stack)  # warm-up
    done, found = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds or done < 2 * batch:
        found += sum(bool(f) for f in detector.detect_batch(stack))
        done += batch
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"mode": "detect", "min_face": min_face, "max_side": max_side, "batch": batch, "frames": done,
            "frames_per_s": round(done / wall, 2), "cpu_s_per_frame": round(cpu / done, 4),
            "faces_found": f"{found}/{done}"}


def bench_stage(frames: list[np.ndarray], count: int, threads: int, batch: int, max_side: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "oulu_images"
        for i in range(count):
            video = f"1_1_{1 + i // 10:02d}_1"
            path = root / "train_img_flod" / video / f"{video}_{1 + i % 10}_scene.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        cpu = time.process_time()
        summary = bbox.main(["--data-root", str(root), "--device", "cpu", "--threads", str(threads),
                             "--batch-size", str(batch), "--max-side", str(max_side)])
        cpu = time.process_time() - cpu
        setup_logging(None)  # the stage pointed the log file into the temporary tree
    return {"mode": "stage", "min_face": 40.0, "max_side": max_side, "batch": batch, "frames": count,
            "frames_per_s": summary["frames_per_second"], "cpu_s_per_frame": round(cpu / count, 4),
            "faces_found": f"{summary['boxes']}/{count}"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--min-faces", type=float, nargs="+", default=[40.0, 20.0], help="min face sizes to time")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="frames per detect_batch call")
    p.add_argument("--size", type=parse_size, default="640x480",
                   help="frame size WxH the photos are scaled and padded into (1920x1080: OULU-NPU)")
    p.add_argument("--max-sides", type=int, nargs="+", default=[0],
                   help="MTCNN max_side values to time (0 = full resolution; data/bbox.py --max-side)")
    p.add_argument("--seconds", type=float, default=8.0, help="time per setting")
    p.add_argument("--stage-frames", type=int, default=64, help="frames in the end-to-end stage run (0 = skip)")
    p.add_argument("--samples-dir", default=str(SAMPLES), help="folder of sample photos")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    return p


def main(argv=None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(None)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if any(m < 0 for m in args.max_sides):
        parser.error(f"--max-sides must be >= 0, got {args.max_sides}")
    width, height = args.size
    frames = [fit_frame(image, width, height) for image in load_photos(Path(args.samples_dir)).values()]
    log.info("%d photos fitted into %dx%d; torch threads %d; load average %s", len(frames), width, height,
             torch.get_num_threads(), os.getloadavg())
    rows = []
    for max_side in args.max_sides:
        for min_face in args.min_faces:
            for batch in args.batch_sizes:
                rows.append(bench_detect(frames, min_face, batch, args.seconds, max_side))
                log.info("%s", rows[-1])
        if args.stage_frames > 0:
            rows.append(bench_stage(frames, args.stage_frames, args.threads, max(args.batch_sizes), max_side))
            log.info("%s", rows[-1])
    log.info("load average after: %s", os.getloadavg())
    print(f"frames {width}x{height}")
    print(f"{'mode':7s} {'min_face':>8s} {'max_side':>8s} {'batch':>5s} {'frames/s':>9s} {'CPU s/frame':>12s} "
          f"{'faces':>8s}")
    for r in rows:
        print(f"{r['mode']:7s} {r['min_face']:8.0f} {r['max_side']:8d} {r['batch']:5d} {r['frames_per_s']:9.2f} "
              f"{r['cpu_s_per_frame']:12.4f} {r['faces_found']:>8s}")
    if args.out:
        atomic_write_json(args.out, {"rows": rows, "threads": args.threads, "size": [width, height],
                                     "loadavg": os.getloadavg()})
    return rows


if __name__ == "__main__":
    main()
