"""Frames per second of the depth-label stage (data/depth.py): face mesh, rendering, and in total.

Runs on real photos (the shared samples, scikit-image's astronaut, matplotlib's Grace Hopper), each
at its own size and fitted into a 640x480 frame (the issue's target: at least 15 frames/s on 2 CPU
cores; PRNet manages about 1). Modes:

* ``mesh full`` : MediaPipe face mesh, static mode, on the whole frame
* ``mesh box``  : static mode on the 1.8x square crop around a face box (the stage's default path)
* ``mesh track``: video mode over a simulated video (the frame shifted by a few pixels per step)
* ``render``    : z-buffer of the mesh into the frame (``landmarks_to_depth``)
* ``estimate``  : ``FaceDepthEstimator.estimate`` with a box (mesh + render + uint8)
* ``stage``     : what the stage does per frame: JPEG decode, estimate, grey JPEG encode

    python bench/bench_depth.py [--repeats 30] [--out bench_depth.json]

Timings are medians of ``--repeats`` calls after one warm-up, as wall ms / CPU ms per frame (CPU
time of all the process's threads: the stage is single-threaded, so wall ~ CPU on an idle core).
Other jobs on the machine inflate wall times (the load average is logged): run it twice.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import os
import platform
import time

import cv2
import numpy as np

from data.boxes import Box
from data.face_depth import FaceDepthEstimator, landmarks_to_depth
from utils.io import atomic_write_json
from utils.run import setup_logging

logger = logging.getLogger(__name__)
SHARED = Path(__file__).resolve().parents[2] / "shared"


def load_photos(samples_dir: Path) -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    photos = {p.stem: cv2.imread(str(p)) for p in sorted(Path(samples_dir).glob("*.jpg"))}
    photos["astronaut"] = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return {k: v for k, v in photos.items() if v is not None}


def fit_640x480(image: np.ndarray) -> np.ndarray:
    """Scale into 640 wide x 480 high and pad with black: a VGA frame with the face where it was."""
    h, w = image.shape[:2]
    s = min(640 / w, 480 / h)
    small = cv2.resize(image, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) per call over ``repeats`` calls after a warm-up.

    CPU time counts every thread of the process; on a shared machine it is the steadier number,
    wall time the one a dedicated core would see only when nothing else runs.
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))


def bench_image(name: str, image: np.ndarray, repeats: int) -> dict | None:
    h, w = image.shape[:2]
    static = FaceDepthEstimator()
    pts = static.landmarks(image)
    if pts is None:
        logger.warning("%s: no face found, left out", name)
        return None
    x1, y1 = pts[:, :2].min(0)
    x2, y2 = pts[:, :2].max(0)
    box = Box(int(x1), int(y1), int(x2 - x1), int(y2 - y1))     # stands in for the MTCNN box
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    row = {"image": name, "size": f"{w}x{h}", "face_px": int((landmarks_to_depth(pts, h, w) > 0).sum())}

    row["mesh_full"] = timed(lambda: static.landmarks(image), repeats)
    row["mesh_box"] = timed(lambda: static.landmarks(image, box), repeats)
    tracker = FaceDepthEstimator(tracking=True)
    step = [0]

    def track():
        # a slowly drifting face: a real video's neighbouring frames differ by a few pixels
        step[0] += 1
        dx = int(3 * np.sin(step[0] / 5.0))
        shifted = np.roll(image, dx, axis=1)
        tracker.landmarks(shifted, Box(box.x + dx, box.y, box.w, box.h))
    row["mesh_track"] = timed(track, repeats)
    row["render"] = timed(lambda: landmarks_to_depth(pts, h, w), repeats)
    row["estimate"] = timed(lambda: static.estimate(image, box), repeats)

    def stage():
        frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        depth = static.estimate(frame, box)
        cv2.imencode(".jpg", depth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    row["stage"] = timed(stage, repeats)
    static.close()
    tracker.close()
    return row


MODES = ("mesh_full", "mesh_box", "mesh_track", "render", "estimate", "stage")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples-dir", type=Path, default=SHARED / "samples", help="folder of real photos (*.jpg)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per image and mode (median reported)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    return p


def run(args) -> dict:
    threads = {"cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
               "cv2_threads": cv2.getNumThreads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    logger.info("machine: %s, python %s, threads %s", platform.processor() or platform.machine(),
                platform.python_version(), threads)
    rows = []
    for name, photo in load_photos(args.samples_dir).items():
        for variant, image in ((name, photo), (f"{name}@640x480", fit_640x480(photo))):
            row = bench_image(variant, image, args.repeats)
            if row is not None:
                rows.append(row)
                logger.info("%-26s %-8s face %6d px | %s", row["image"], row["size"], row["face_px"],
                            "  ".join(f"{m} {1000 * row[m][0]:5.1f}/{1000 * row[m][1]:4.1f}" for m in MODES))
    summary = {}
    for m in MODES:
        vga = [r for r in rows if r["size"] == "640x480"]
        summary[m] = {"fps_wall_all": round(len(rows) / sum(r[m][0] for r in rows), 1),
                      "fps_wall_640x480": round(len(vga) / sum(r[m][0] for r in vga), 1),
                      "fps_cpu_640x480": round(len(vga) / max(1e-9, sum(r[m][1] for r in vga)), 1)}
        logger.info("%-10s %6.1f frames/s over all images, %6.1f on the 640x480 frames (wall); "
                    "%6.1f per busy core on 640x480 (CPU time)", m, summary[m]["fps_wall_all"],
                    summary[m]["fps_wall_640x480"], summary[m]["fps_cpu_640x480"])
    load = os.getloadavg()
    logger.info("load average during the run: %.1f %.1f %.1f on %d cores (above the core count, other "
                "jobs inflate wall times)", *load, threads["affinity"])
    result = {"threads": threads, "load_average": load, "repeats": args.repeats, "rows": rows, "summary": summary}
    if args.out is not None:
        atomic_write_json(args.out, result)
    return result


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run(args)


if __name__ == "__main__":
    main()
