"""Stage: dense face depth labels (PRNet convention) for every frame of a split, or PRNet maps imported.

The maps come from the MediaPipe face mesh rendered by ``data/face_depth.py`` (background 0, the face's
depth normalised to [0, 1] over the mesh, stored as 0-255); every frame gets one, live and attack:
the test score divides by the frame's depth (docs/ORIGINAL.md 3.8)::

    python data/depth.py --data-root oulu_images --split train [--shard K/N] [--no-use-boxes]
    python data/depth.py --data-root oulu_images --split train --import-prnet PRNET_DIR

Frames are read from ``<data-root>/<split>_img_flod``, boxes (optional, they only steer the mesh
to the right face) from ``<split>_bbox_flod``, maps written to ``<split>_depth_flod``
(docs/DATA_LAYOUT.md). With a box, the map labels the face in the box: the mesh that overlaps the
box is kept, and a frame where the only meshes found lie beside it (a person in the background)
gets no map. Frames without a map are listed, with the reason, in ``skipped.csv`` of the run folder.
mediapipe and torch are imported lazily: other stages import ``data.*`` without paying for them.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import re
import time
import multiprocessing
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from data.boxes import read_box
from data.face_depth import FaceDepthEstimator  # also re-exported for old ``from data.depth import`` callers
from data.frames import SPLITS, box_name, depth_name, frame_name, list_frames, list_videos, split_dirs
from utils.io import InputError, SkipReport, atomic_imwrite, atomic_write_bytes, atomic_write_json, read_image
from utils.run import parse_shard, run_stage, save_config, select_shard

logger = logging.getLogger(__name__)


def estimator_kwargs(args) -> dict:
    return dict(refine=args.refine, box_scale=args.box_scale, crop_size=args.crop_size,
                min_detection_confidence=args.min_detection_confidence, tracking=args.tracking,
                fill_holes=args.fill_holes, max_faces=args.max_faces, min_box_iou=args.min_box_iou)


def process_video(estimator: FaceDepthEstimator, dirs: dict, video: str, use_boxes: bool = True,
                  jpeg_quality: int = 95, progress=None) -> dict:
    """Depth maps for the frames of one video that have none yet.

    Returns counts and ``skipped`` rows (path, reason). In tracking mode a video with any map missing
    is replayed from its first frame (writing only the missing maps), so that an interrupted run
    ends with the maps an uninterrupted one would have written.
    """
    frames = list_frames(dirs["img"] / video)
    out_dir = dirs["depth"] / video
    missing = {f for f in frames if not (out_dir / depth_name(f)).is_file()}
    stats = {"frames": len(frames), "existing": len(frames) - len(missing), "written": 0, "no_face": 0,
             "unreadable": 0, "no_box": 0, "bad_box": 0, "not_on_box": 0, "skipped": []}
    if not missing:
        todo = []
    elif estimator.tracking:
        todo = frames
        estimator.reset()
    else:
        todo = [f for f in frames if f in missing]
    if progress is not None and len(frames) > len(todo):
        progress(len(frames) - len(todo))
    for name in todo:
        frame_path = dirs["img"] / video / name
        try:
            image = read_image(frame_path)
        except InputError as err:
            stats["unreadable"] += name in missing
            stats["skipped"] += [(str(frame_path), str(err))] if name in missing else []
            image = None
        box = None
        if image is not None and use_boxes:
            box_path = dirs["bbox"] / video / box_name(name)
            if not box_path.is_file():
                stats["no_box"] += name in missing
            else:
                try:
                    box = read_box(box_path)
                except InputError as err:
                    stats["bad_box"] += name in missing
                    logger.warning("%s; the face mesh searches the whole frame instead", err)
        depth, reason = estimator.estimate_with_reason(image, box) if image is not None else (None, "")
        if name in missing and image is not None:
            if depth is None:
                stats["no_face"] += 1
                stats["not_on_box"] += reason.startswith("no face mesh overlaps")
                stats["skipped"].append((str(frame_path), reason))
            else:
                atomic_imwrite(out_dir / depth_name(name), depth, jpeg_quality)
                stats["written"] += 1
        if progress is not None:
            progress(1)
    return stats


_WORKER: dict = {}


def _worker_init(kwargs: dict) -> None:
    # one estimator per worker process, built once (the mediapipe graph is not picklable)
    cv2.setNumThreads(1)
    _WORKER["estimator"] = FaceDepthEstimator(**kwargs)


def _worker_video(job):
    dirs, video, use_boxes, jpeg_quality = job
    return video, process_video(_WORKER["estimator"], dirs, video, use_boxes, jpeg_quality)


_DEPTH_RE = re.compile(r"^(?P<video>.+)_(?P<n>\d+)_depth1D\.jpg$")


def check_prnet_map(depth: np.ndarray | None, frame_size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """Check a decoded PRNet map (None: undecodable) against its frame's (width, height): (grey map,
    None) when usable, else (None, reason). A 3-channel image whose channels agree counts as grey."""
    if depth is None:
        return None, "not a readable image (empty, truncated or not an image)"
    if depth.ndim == 3:
        # JPEG chroma rounding leaves a few levels between the channels of a saved grey image
        if depth.shape[2] != 3 or int(np.ptp(depth.astype(np.int16), axis=2).max()) > 3:
            return None, f"not a grey map ({depth.shape[2]} channels that differ)"
        depth = cv2.cvtColor(depth, cv2.COLOR_BGR2GRAY)
    if depth.dtype != np.uint8:
        return None, f"not an 8-bit map ({depth.dtype})"
    if (depth.shape[1], depth.shape[0]) != tuple(frame_size):
        return None, f"size {depth.shape[1]}x{depth.shape[0]} differs from its frame {frame_size[0]}x{frame_size[1]}"
    if not depth.any():
        return None, "all black (the test score divides by the map's sum)"
    return depth, None


def import_prnet(src, dirs: dict, videos, report: SkipReport, jpeg_quality: int = 95) -> dict:
    """Copy existing PRNet ``<video>_<n>_depth1D.jpg`` maps (any folder depth under ``src``) into the
    depth tree, checked by :func:`check_prnet_map`. Grey files are copied byte for byte; bad ones go
    to the report; maps already in the tree are kept."""
    from PIL import Image
    from tqdm import tqdm

    src, wanted = Path(src), set(videos)
    if not src.is_dir():
        raise InputError(f"--import-prnet {src}: no such folder")
    files = sorted(p for p in src.rglob("*_depth1D.jpg") if not p.name.startswith("."))
    if not files:
        raise InputError(f"--import-prnet {src}: no <video>_<n>_depth1D.jpg files in it")
    stats = {"found": len(files), "imported": 0, "existing": 0, "bad": 0}
    for path in tqdm(files, desc="import PRNet", unit="map"):
        m = _DEPTH_RE.match(path.name)
        video, n = m.group("video"), int(m.group("n"))
        if video not in wanted:
            if not (dirs["img"] / video).is_dir():
                report.add(path, f"no frame folder {dirs['img'] / video}")
                stats["bad"] += 1
            continue                              # another shard's video
        frame = dirs["img"] / video / frame_name(video, n)
        out_path = dirs["depth"] / video / depth_name(frame.name)
        if out_path.is_file():
            stats["existing"] += 1
            continue
        try:
            with Image.open(frame) as im:         # reads the header only
                frame_size = im.size
        except OSError:
            grey, reason = None, f"no readable frame {frame}"
        else:
            raw = path.read_bytes()
            decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
            grey, reason = check_prnet_map(decoded, frame_size)
        if reason is not None:
            report.add(path, reason)
            stats["bad"] += 1
            continue
        if raw[:2] == b"\xff\xd8" and decoded.ndim == 2:
            atomic_write_bytes(out_path, raw)     # already a grey JPEG: keep PRNet's exact bytes
        else:
            atomic_imwrite(out_path, grey, jpeg_quality)
        stats["imported"] += 1
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Dense face depth maps (PRNet convention) from the MediaPipe "
                                            "face mesh, for every frame of a split; or import PRNet maps.")
    p.add_argument("--data-root", type=Path, default=Path("oulu_images"),
                   help="full-frame tree holding <split>_img_flod, <split>_bbox_flod; maps go to <split>_depth_flod")
    p.add_argument("--split", default="train", choices=SPLITS, help="which split's frames")
    p.add_argument("--shard", type=parse_shard, default=(1, 1),
                   help="K/N: process every N-th video starting at the K-th, to split the work over machines")
    p.add_argument("--use-boxes", action=argparse.BooleanOptionalAction, default=True,
                   help="run the mesh on a crop around each frame's MTCNN box when its .dat exists "
                        "(frames without one are searched whole)")
    p.add_argument("--box-scale", type=float, default=1.8,
                   help="side of the square crop the mesh runs on, as a multiple of the box's longer side")
    p.add_argument("--crop-size", type=int, default=256, help="the crop is resized to this many pixels square")
    p.add_argument("--max-faces", type=int, default=4,
                   help="meshes found per crop; the one overlapping the box is kept (so a second person in the "
                        "crop cannot take the label)")
    p.add_argument("--min-box-iou", type=float, default=0.3,
                   help="a mesh labels the frame only if its bounding box overlaps the MTCNN box by this IoU; "
                        "frames where no mesh does get no map and are listed in skipped.csv")
    p.add_argument("--min-detection-confidence", type=float, default=0.5, help="MediaPipe face detector threshold")
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=False,
                   help="MediaPipe's attention mesh: refined eye and lip contours, 10 iris points "
                        "(about the same speed)")
    p.add_argument("--tracking", action=argparse.BooleanOptionalAction, default=False,
                   help="MediaPipe video mode within each video (landmarks of frame t seed frame t+1); "
                        "a partly done video is replayed from its first frame on rerun")
    p.add_argument("--fill-holes", action=argparse.BooleanOptionalAction, default=True,
                   help="close the eye and mouth openings of the mesh (PRNet maps are closed surfaces)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the written maps")
    p.add_argument("--workers", type=int, default=1, help="processes, one video at a time each")
    p.add_argument("--import-prnet", type=Path, default=None, metavar="DIR",
                   help="instead of computing maps, copy and validate existing PRNet <video>_<n>_depth1D.jpg "
                        "maps from DIR (any folder depth); run without it afterwards to fill the gaps")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="run folder for config.json, log.txt, skipped.csv, summary.json "
                        "(default <data-root>/logs/depth_<split>[_shardKofN])")
    return p


def default_out_dir(args) -> Path:
    k, n = args.shard
    return args.data_root / "logs" / (f"depth_{args.split}" + (f"_shard{k}of{n}" if n > 1 else ""))


def run(args) -> dict:
    """Compute (or import) the depth maps of one split; returns the counts written to summary.json."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    out_dir = Path(args.out_dir) if args.out_dir is not None else default_out_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(args, out_dir)
    dirs = split_dirs(args.data_root, args.split)
    if not dirs["img"].is_dir():
        raise InputError(f"{dirs['img']}: no frame folder (run data/extract_frame.py first)")
    all_videos = list_videos(dirs["img"])
    if not all_videos:
        raise InputError(f"{dirs['img']}: no video folders in it")
    videos = select_shard(all_videos, args.shard)
    report = SkipReport(out_dir / "skipped.csv")
    start = time.perf_counter()
    try:
        if args.import_prnet is not None:
            with logging_redirect_tqdm():
                summary = import_prnet(args.import_prnet, dirs, videos, report, args.jpeg_quality)
        else:
            summary = _compute(args, dirs, videos, report)
    finally:
        report.write()     # also when the run stops, so the user sees what failed
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["videos"] = len(videos)
    atomic_write_json(out_dir / "summary.json", summary)
    logger.info("summary: %s", summary)
    if len(report):
        logger.warning("%d items skipped, listed in %s", len(report), report.path)
    return {**summary, "report": str(report.path), "out_dir": str(out_dir)}


def _compute(args, dirs: dict, videos: list, report: SkipReport) -> dict:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    total_frames = sum(len(list_frames(dirs["img"] / v)) for v in videos)
    totals = defaultdict(int)

    def add(stats):
        report.extend(stats.pop("skipped"))
        for key, value in stats.items():
            totals[key] += value

    kwargs = estimator_kwargs(args)
    with logging_redirect_tqdm(), tqdm(total=total_frames, desc=f"depth {args.split}", unit="frame") as bar:
        if args.workers <= 1:
            with FaceDepthEstimator(**kwargs) as estimator:
                for video in videos:
                    add(process_video(estimator, dirs, video, args.use_boxes, args.jpeg_quality, bar.update))
        else:
            ctx = multiprocessing.get_context("spawn")   # mediapipe graphs do not survive fork
            jobs = [(dirs, v, args.use_boxes, args.jpeg_quality) for v in videos]
            with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(kwargs,)) as pool:
                for video, stats in pool.map(_worker_video, jobs):
                    bar.update(stats["frames"])
                    add(stats)
    if totals["no_box"]:
        logger.info("%d frames had no box file; the mesh searched the whole frame", totals["no_box"])
    if totals["not_on_box"]:
        logger.warning("%d frames: a face mesh was found, but not on the MTCNN box (another person?): no map "
                       "written, listed in %s", totals["not_on_box"], report.path)
    failed = totals["no_face"] + totals["unreadable"]
    if failed and not (totals["written"] + totals["existing"]):
        raise InputError(f"no depth map could be made for any of {failed} frames (see {report.path})")
    return dict(totals)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, args.out_dir if args.out_dir is not None else default_out_dir(args))


if __name__ == "__main__":
    main()
