"""Stage 2: MTCNN face boxes, ``<data-root>/<split>_bbox_flod/<video>/<video>_<n>_scene.dat`` per frame.

Each frame of ``<split>_img_flod/<video>/`` goes through our PyTorch MTCNN (data/mtcnn.py, the weights
of the ``mtcnn==1.0.0`` package, no TensorFlow), in batches of frames. The box file is written in the
one project format, ``x y w h score`` (docs/DATA_LAYOUT.md, data/boxes.py). When a frame holds several
faces the most probable one is kept, as the original kept the ``mtcnn`` package's first detection
(``--face-rule area``: the largest ``area * probability`` instead; data.mtcnn.select_face). With ``--max-side`` large frames (OULU-NPU's 1920x1080) are detected
shrunk; the boxes are still written in full-frame pixels.

Nothing is dropped silently: frames without a face and unreadable images are listed in
``skipped.csv`` of the run folder (``--out-dir``, with config.json, log.txt, summary.json). Frames
without a face are also remembered per video in ``<split>_bbox_flod/<video>/.noface`` (one frame name
a line), so a rerun skips them unless ``--retry-missing``; every rerun still lists them in its report.
A rerun skips frames whose box file exists (each was written atomically) and removes temp files left
by a killed run, so it ends with the same files as an uninterrupted run. ``--shard K/N`` splits the
videos across machines. Exit status: 0 when every frame was processed (frames without a face
included), 1 when some image could not be read (listed in skipped.csv; the others are done), 2 on bad
input such as a missing image tree or missing MTCNN weights.

    python data/bbox.py --data-root oulu_images --split train --batch-size 16
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.boxes import write_box
from data.frames import SPLITS, box_name, list_frames, list_videos, split_dirs
from data.mtcnn import FACE_RULES, MTCNN, select_face
from utils.io import InputError, SkipReport, atomic_write_json, atomic_write_text, read_image
from utils.run import parse_shard, run_stage, save_config, select_shard

log = logging.getLogger(__name__)

NOFACE_NAME = ".noface"
NOFACE_REASON = "no face found"
NOFACE_EARLIER = "no face found by an earlier run (--retry-missing detects again)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default="oulu_images",
                   help="reads <data-root>/<split>_img_flod/, writes <data-root>/<split>_bbox_flod/")
    p.add_argument("--split", default="train", choices=SPLITS, help="which split's frames to process")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=None,
                   help="several splits in one run (overrides --split)")
    p.add_argument("--shard", type=parse_shard, default="1/1",
                   help="K/N: only every N-th video of each split (sorted) starting at the K-th, "
                        "to split the work across machines")
    p.add_argument("--batch-size", type=int, default=16, help="frames per detector batch")
    p.add_argument("--min-face", type=float, default=40.0,
                   help="smallest face in pixels the image pyramid looks for (the mtcnn package's default is 20; "
                        "40 is about 2.5x faster and OULU faces are far larger)")
    p.add_argument("--max-side", type=int, default=0,
                   help="0 = detect at full resolution; N > 0: frames whose longer side exceeds N are shrunk to N "
                        "(cv2.INTER_AREA) for detection and the boxes scaled back to full-frame pixels; --min-face "
                        "then counts in shrunk pixels. E.g. 960 for OULU-NPU's 1920x1080 frames: faces of hundreds "
                        "of pixels stay far above --min-face 40, boxes move by about 2%% of their size, and on the "
                        "CPU detection runs about 4x faster (5 -> 23 frames/s on one thread, bench/bench_bbox.py), "
                        "the whole stage with JPEG decoding about 3x")
    p.add_argument("--scale-factor", type=float, default=0.709, help="ratio between image pyramid levels")
    p.add_argument("--thresholds", type=float, nargs=3, default=[0.6, 0.7, 0.7], metavar=("P", "R", "O"),
                   help="face-probability thresholds of P-Net, R-Net and O-Net")
    p.add_argument("--face-rule", choices=FACE_RULES, default="first",
                   help="which face a frame with several keeps: first = the most probable (the original's), "
                        "area = the largest area x probability")
    p.add_argument("--retry-missing", action="store_true",
                   help="run the detector again on frames an earlier run found no face in")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--io-threads", type=int, default=2, help="threads decoding the next batch's JPEGs meanwhile")
    p.add_argument("--weights-dir", default=None,
                   help="folder with pnet.lz4, rnet.lz4, onet.lz4 (default: those of the installed mtcnn package)")
    p.add_argument("--out-dir", default=None,
                   help="run folder for config.json, log.txt, skipped.csv, summary.json "
                        "(default <data-root>/logs/bbox_<splits>[_shard<K>of<N>])")
    return p


def splits_of(args) -> list[str]:
    return list(dict.fromkeys(args.splits)) if args.splits else [args.split]


def default_out_dir(args) -> Path:
    if args.out_dir:
        return Path(args.out_dir)
    k, n = args.shard
    name = "bbox_" + "_".join(splits_of(args)) + (f"_shard{k}of{n}" if n > 1 else "")
    return Path(args.data_root) / "logs" / name


# --------------------------------------------------------------------------------------------------
# Per-video state on disk


def read_noface(bbox_video_dir: Path) -> set[str]:
    path = bbox_video_dir / NOFACE_NAME
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()}


def write_noface(bbox_video_dir: Path, names: set[str]) -> None:
    path = bbox_video_dir / NOFACE_NAME
    if names:
        atomic_write_text(path, "".join(f"{name}\n" for name in sorted(names)))
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(bbox_video_dir: Path) -> int:
    """Delete temp files of atomic writes a killed run left behind (``.<name>.<random>.tmp``)."""
    count = 0
    if bbox_video_dir.is_dir():
        for path in bbox_video_dir.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
                path.unlink(missing_ok=True)
                count += 1
    return count


@dataclass
class VideoState:
    split: str
    video: str
    img_dir: Path
    bbox_dir: Path
    noface: set[str] = field(default_factory=set)
    dirty: bool = False


@dataclass
class Plan:
    pending: list[tuple[VideoState, str]]  # (video, frame name) still to detect, in order
    done: int  # frames with a box already
    skipped_noface: int  # frames recorded as no-face by an earlier run
    videos: int


def plan_split(data_root, split: str, shard, retry_missing: bool, report: SkipReport) -> Plan:
    dirs = split_dirs(data_root, split)
    img_root, bbox_root = dirs["img"], dirs["bbox"]
    if not img_root.is_dir():
        raise InputError(f"{img_root}: image tree not found (run data/extract_frame.py for split {split!r} first)")
    videos = list_videos(img_root)
    if not videos:
        raise InputError(f"{img_root}: no video folders (expected <video>/<video>_<n>_scene.jpg)")
    mine = select_shard(videos, tuple(shard))
    pending, done, skipped, leftovers = [], 0, 0, 0
    for video in mine:
        frames = list_frames(img_root / video)
        if not frames:
            report.add(img_root / video, "no <video>_<n>_scene.jpg frames in this folder")
            continue
        state = VideoState(split, video, img_root / video, bbox_root / video)
        leftovers += remove_leftovers(state.bbox_dir)
        have = {p.name for p in state.bbox_dir.iterdir()} if state.bbox_dir.is_dir() else set()
        state.noface = read_noface(state.bbox_dir) & set(frames)
        for frame in frames:
            if box_name(frame) in have:
                done += 1
            elif frame in state.noface and not retry_missing:
                skipped += 1
                report.add(state.img_dir / frame, NOFACE_EARLIER)
            else:
                pending.append((state, frame))
    if leftovers:
        log.info("%s: removed %d temp files of an interrupted run", bbox_root, leftovers)
    log.info("split %s: %d videos (%d in shard %d/%d), %d frames to detect, %d with a box already, %d without a face "
             "earlier", split, len(videos), len(mine), *shard, len(pending), done, skipped)
    return Plan(pending, done, skipped, len(mine))


# --------------------------------------------------------------------------------------------------
# Detection loop


def _load_rgb(path: Path):
    """RGB image, or the InputError explaining why it cannot be read."""
    try:
        return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
    except InputError as exc:
        return exc


def detect_frames(detector: MTCNN, pending: list[tuple[VideoState, str]], batch_size: int, io_threads: int,
                  report: SkipReport, desc: str = "boxes", face_rule: str = "first") -> dict:
    """Detect, write one box per frame, remember frames without a face; returns counts."""
    counts = {"boxes": 0, "noface": 0, "unreadable": 0}
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]

    def load(batch):
        return list(pool.map(_load_rgb, [state.img_dir / frame for state, frame in batch]))

    with ThreadPoolExecutor(max(1, io_threads)) as pool, ThreadPoolExecutor(1) as prefetch, \
            logging_redirect_tqdm(), tqdm(total=len(pending), unit="frame", desc=desc) as bar:
        upcoming = prefetch.submit(load, batches[0]) if batches else None
        for b, batch in enumerate(batches):
            images = upcoming.result()
            upcoming = prefetch.submit(load, batches[b + 1]) if b + 1 < len(batches) else None
            readable = [k for k, image in enumerate(images) if not isinstance(image, Exception)]
            faces = detector.detect_batch([images[k] for k in readable]) if readable else []
            found = dict(zip(readable, faces))
            for k, (state, frame) in enumerate(batch):
                if k not in found:
                    counts["unreadable"] += 1
                    path = state.img_dir / frame
                    report.add(path, str(images[k]).removeprefix(f"{path}: "))
                    log.warning("%s", images[k])
                    continue
                face = select_face(found[k], face_rule)
                if face is None:
                    counts["noface"] += 1
                    report.add(state.img_dir / frame, NOFACE_REASON)
                    state.dirty |= frame not in state.noface
                    state.noface.add(frame)
                else:
                    counts["boxes"] += 1
                    write_box(state.bbox_dir / box_name(frame), face.to_box())
                    state.dirty |= frame in state.noface
                    state.noface.discard(frame)
            for state in {id(s): s for s, _ in batch}.values():
                if state.dirty:
                    write_noface(state.bbox_dir, state.noface)
                    state.dirty = False
            bar.update(len(batch))
            bar.set_postfix(noface=counts["noface"], unreadable=counts["unreadable"])
    return counts


def run(args) -> dict:
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.min_face <= 0 or not 0.0 < args.scale_factor < 1.0:
        raise InputError(f"need --min-face > 0 and 0 < --scale-factor < 1, got {args.min_face}, {args.scale_factor}")
    if args.max_side < 0:
        raise InputError(f"--max-side must be 0 (off) or a positive number of pixels, got {args.max_side}")
    if not all(0.0 <= t < 1.0 for t in args.thresholds):
        raise InputError(f"--thresholds must lie in [0, 1), got {args.thresholds}")
    out_dir = default_out_dir(args)
    args.out_dir = str(out_dir)
    save_config(args, out_dir)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = SkipReport(out_dir / "skipped.csv")
    plans = {split: plan_split(args.data_root, split, args.shard, args.retry_missing, report)
             for split in splits_of(args)}
    pending = [item for plan in plans.values() for item in plan.pending]
    detector = MTCNN(min_face_size=args.min_face, scale_factor=args.scale_factor, thresholds=args.thresholds,
                     device=args.device, weights_dir=args.weights_dir, max_side=args.max_side)
    log.info("MTCNN on %s, %d frames to detect%s", detector.device, len(pending),
             f", frames shrunk to a longer side of at most {args.max_side} px" if args.max_side else "")
    start = time.perf_counter()
    try:
        counts = detect_frames(detector, pending, args.batch_size, args.io_threads, report,
                               face_rule=getattr(args, "face_rule", "first"))
    finally:  # on Ctrl-C too: what was skipped so far stays on record
        report.write()
    seconds = time.perf_counter() - start
    summary = {
        "splits": list(plans), "shard": list(args.shard),
        "videos": sum(p.videos for p in plans.values()),
        "frames_detected": len(pending), **counts,
        "had_box": sum(p.done for p in plans.values()),
        "noface_earlier": sum(p.skipped_noface for p in plans.values()),
        "seconds": round(seconds, 3),
        "frames_per_second": round(len(pending) / seconds, 2) if pending and seconds > 0 else None,
        "skipped_csv": str(report.path),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    log.info("wrote %d boxes, %d frames without a face (%d known from earlier runs), %d unreadable, "
             "%d had a box already; %.1f frames/s; report %s", counts["boxes"], counts["noface"],
             summary["noface_earlier"], counts["unreadable"], summary["had_box"],
             summary["frames_per_second"] or 0.0, report.path)
    return summary


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    summary = run_stage(run, args, default_out_dir(args))
    if summary["unreadable"]:
        log.error("%d frames could not be read; they are listed in %s", summary["unreadable"],
                  summary["skipped_csv"])
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()
