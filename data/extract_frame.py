"""Stage 1: videos to full frames, ``<data-root>/<split>_img_flod/<video>/<video>_<n>_scene.jpg``.

``n`` is the 1-based index of the frame in decode order (docs/DATA_LAYOUT.md); the original script
never advanced its counter and kept one file per video. With ``--every K`` frames 1, 1+K, ... are
written under their true index; ``--max-frames M`` stops after M written frames.

Videos (.avi/.mp4/.mov, any case) are found recursively under ``--video-root``, so the dataset's
``Train_files/`` works flat or nested; the video id is the file name without extension. Each video is
one task for a worker process. A video is finished when its folder holds ``.done`` (JSON, written
after every frame): a rerun skips those and redoes the rest, reusing frames already on disk (each was
written atomically) and removing stray temp files, so a killed run ends as an uninterrupted one.
Unreadable, truncated or empty videos go to ``skipped.csv`` in the run folder and the run goes on.

With ``--protocol FILE.csv`` the rows of a CSV protocol are extracted instead: each row's ``path``
(under ``--video-root``, default the CSV's folder) is a video, a folder of images or one image, and
its frames go to the tree of the row's ``split`` (rows without one: ``--split``). Image rows are
numbered by their position in natural file-name order (data/sources.py, docs/DATA_LAYOUT.md).

    python data/extract_frame.py --video-root Oulu_Origin/Train_files --data-root oulu_images --split train
    python data/extract_frame.py --protocol mydata.csv --video-root /data/mydata --data-root frames
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import multiprocessing as mp
import os

import cv2
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.frames import SPLITS, frame_name, split_dirs
from data.protocols import read_protocol
from data.sources import extract_images, row_source
from utils.io import InputError, SkipReport, atomic_imwrite, atomic_write_json
from utils.run import parse_shard, run_stage, save_config, select_shard

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov")
DONE_NAME = ".done"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video-root", default=None,
                   help="folder searched recursively for .avi/.mp4/.mov videos (one split of the dataset; default "
                        "Oulu_Origin/Train_files); with --protocol, the root of the CSV's paths (default its folder)")
    p.add_argument("--protocol", default=None,
                   help="CSV protocol: extract its rows (videos, image folders or single images) into the tree "
                        "of each row's split instead of searching --video-root")
    p.add_argument("--data-root", default="oulu_images", help="frames go to <data-root>/<split>_img_flod/<video>/")
    p.add_argument("--split", default="train", choices=SPLITS,
                   help="which <split>_img_flod tree to write (with --protocol: for rows without a split)")
    p.add_argument("--every", type=int, default=1, help="keep frames 1, 1+K, 1+2K, ... (their true index is kept)")
    p.add_argument("--max-frames", type=int, default=0, help="at most this many frames per video (0 = all)")
    p.add_argument("--jpeg-quality", type=int, default=95,
                   help="JPEG quality of the frames (cv2's default, as the original)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="worker processes, one video per task (1 = run in this process)")
    p.add_argument("--shard", type=parse_shard, default=(1, 1),
                   help="K/N: process only every N-th video starting at the K-th (sorted), to split across machines")
    p.add_argument("--out-dir", default=None,
                   help="run folder for config.json, log.txt, skipped.csv, summary.json "
                        "(default <data-root>/logs/extract_<split>[_shard<K>of<N>])")
    return p


def default_out_dir(args) -> Path:
    if args.out_dir:
        return Path(args.out_dir)
    k, n = args.shard
    name = f"extract_{Path(args.protocol).stem}" if args.protocol else f"extract_{args.split}"
    return Path(args.data_root) / "logs" / (name + (f"_shard{k}of{n}" if n > 1 else ""))


def find_videos(video_root) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Sorted (video id, path) of every video under ``video_root``, and (path, reason) of duplicates.

    The frames folder is named after the video id, so two files with one name in different
    sub-folders cannot both be extracted: the first in sorted path order wins, the others are reported.
    """
    root = Path(video_root)
    paths = sorted((p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    first: dict[str, Path] = {}
    duplicates = []
    for path in paths:
        if path.stem in first:
            duplicates.append((str(path), f"duplicate video name {path.stem}: {first[path.stem]} is extracted instead"))
        else:
            first[path.stem] = path
    return sorted(first.items()), duplicates


def expected_names(video: str, count: int, every: int) -> set[str]:
    return {frame_name(video, 1 + i * every) for i in range(count)}


def _on_disk(video_dir: Path) -> tuple[set[str], list[Path]]:
    """(frame file names, leftovers: temp files of interrupted atomic writes)."""
    names, leftovers = set(), []
    for p in video_dir.iterdir():
        if p.name.endswith(".tmp"):
            leftovers.append(p)
        elif p.name.endswith("_scene.jpg") and not p.name.startswith("."):
            names.add(p.name)
    return names, leftovers


def is_finished(video_dir: Path, every: int, max_frames: int) -> bool:
    """True when ``.done`` exists, was written with these settings and every frame it lists is there."""
    try:
        done = json.loads((video_dir / DONE_NAME).read_text(encoding="utf-8"))
        if done["every"] != every or done["max_frames"] != max_frames:
            return False
        return _on_disk(video_dir)[0] == expected_names(video_dir.name, int(done["frames"]), every)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def extract_video(task: tuple) -> dict:
    """Decode one video into its frames folder; returns {video, status, frames, reason}.

    status: ``done``, ``resumed`` (finished earlier), ``failed`` (nothing written, reported),
    ``partial`` (fewer frames decoded than the container announces: frames kept, reported).
    """
    src, video_dir, every, max_frames, quality = task
    src, video_dir = Path(src), Path(video_dir)
    video = video_dir.name
    result = {"video": video, "source": str(src), "frames": 0, "reason": ""}
    if video_dir.is_dir() and is_finished(video_dir, every, max_frames):
        result.update(status="resumed", frames=len(_on_disk(video_dir)[0]))
        return result
    cv2.setNumThreads(1)  # one video per process already fills the cores
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        return {**result, "status": "failed", "reason": "cannot open video (corrupt, truncated or unsupported codec)"}
    announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    written: set[str] = set()
    n = 0
    try:
        while max_frames <= 0 or len(written) < max_frames:
            if not cap.grab():
                break
            n += 1
            if (n - 1) % every:
                continue  # grab without retrieve: skipped frames are not converted
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                n -= 1
                break
            name = frame_name(video, n)
            if not (video_dir / name).is_file():  # an existing frame is complete: writes are atomic
                atomic_imwrite(video_dir / name, frame, quality)
            written.add(name)
    finally:
        cap.release()
    names, leftovers = _on_disk(video_dir) if video_dir.is_dir() else (set(), [])
    for path in leftovers:
        path.unlink(missing_ok=True)
    for name in names - written:  # frames of an earlier run with other --every/--max-frames
        (video_dir / name).unlink(missing_ok=True)
    if not written:
        (video_dir / DONE_NAME).unlink(missing_ok=True)
        if video_dir.is_dir() and not any(video_dir.iterdir()):
            video_dir.rmdir()
        return {**result, "status": "failed", "reason": "no frames could be decoded (empty or corrupt video)"}
    stopped_early = max_frames > 0 and len(written) >= max_frames
    status, reason = "done", ""
    if not stopped_early and announced and n < announced:
        status, reason = "partial", f"decoded {n} of {announced} frames the file announces (truncated?); frames kept"
    atomic_write_json(video_dir / DONE_NAME, {"frames": len(written), "decoded": n, "announced": announced,
                                              "every": every, "max_frames": max_frames, "source": str(src)})
    return {**result, "status": status, "frames": len(written), "reason": reason}


def folder_tasks(args, report: SkipReport) -> tuple[list[tuple], dict]:
    """Every video under --video-root into the --split tree: (tasks of this shard, counts)."""
    video_root = Path(args.video_root or "Oulu_Origin/Train_files")
    if not video_root.is_dir():
        raise InputError(f"{video_root}: --video-root is not a folder")
    videos, duplicates = find_videos(video_root)
    report.extend(duplicates)
    if not videos:
        raise InputError(f"{video_root}: no {'/'.join(VIDEO_SUFFIXES)} videos found (searched sub-folders too); "
                         "for image folders write a CSV protocol and pass --protocol")
    img_dir = split_dirs(args.data_root, args.split)["img"]
    return [("video", str(src), str(img_dir / video), args.every, args.max_frames, args.jpeg_quality)
            for video, src in select_shard(videos, tuple(args.shard))], {"found": len(videos),
                                                                         "duplicates": len(duplicates)}


def protocol_tasks(args, report: SkipReport) -> tuple[list[tuple], dict]:
    """Every row of the CSV protocol into its split's tree; missing paths are reported and skipped."""
    items = [item for item in read_protocol(args.protocol) if not item.generated]
    root = Path(args.video_root) if args.video_root else Path(args.protocol).parent
    if not root.is_dir():
        raise InputError(f"{root}: --video-root (the root of the paths in {args.protocol}) is not a folder")
    tasks, missing = [], 0
    for item in select_shard(items, tuple(args.shard)):
        kind, src = row_source(item, root)
        if kind in ("missing", "unknown"):
            why = "no such file or folder" if kind == "missing" else "neither a video, an image nor a folder"
            report.add(item.where, f"{src}: {why} (path column, relative to --video-root {root})")
            log.warning("%s: %s: %s", item.where, src, why)
            missing += 1
            continue
        img_dir = split_dirs(args.data_root, item.split or args.split)["img"]
        tasks.append((kind, str(src), str(img_dir / item.video_id), args.every, args.max_frames, args.jpeg_quality))
    if not tasks and items:
        raise InputError(f"{args.protocol}: no row's path exists under --video-root {root} (see {report.path})")
    return tasks, {"found": len(items), "missing": missing}


def extract_task(task: tuple) -> dict:
    kind, *rest = task
    return extract_images(tuple(rest)) if kind == "images" else extract_video(tuple(rest))


def run(args) -> dict:
    if args.every < 1:
        raise InputError(f"--every must be >= 1, got {args.every}")
    if args.max_frames < 0:
        raise InputError(f"--max-frames must be >= 0 (0 = all), got {args.max_frames}")
    out_dir = default_out_dir(args)
    args.out_dir = str(out_dir)
    save_config(args, out_dir)
    report = SkipReport(out_dir / "skipped.csv")
    tasks, info = protocol_tasks(args, report) if args.protocol else folder_tasks(args, report)
    log.info("%d items, %d to extract in shard %s/%s -> %s", info["found"], len(tasks), *args.shard, args.data_root)
    counts = {"done": 0, "resumed": 0, "partial": 0, "failed": 0}
    frames = 0
    workers = max(1, min(args.workers, len(tasks)))
    with logging_redirect_tqdm(), tqdm(total=len(tasks), unit="video", desc="frames") as bar:
        pool = mp.Pool(workers) if workers > 1 else None
        try:
            results = pool.imap_unordered(extract_task, tasks) if pool else map(extract_task, tasks)
            for res in results:
                counts[res["status"]] += 1
                frames += res["frames"]
                if res["reason"]:
                    report.add(res["source"], res["reason"])
                    log.warning("%s: %s", res["source"], res["reason"])
                bar.update()
                bar.set_postfix(frames=frames, failed=counts["failed"])
            if pool:
                pool.close()
        finally:
            if pool:
                pool.terminate()  # after close() this only reaps; on Ctrl-C it stops the workers
                pool.join()
    report.write()
    summary = {"videos": len(tasks), "frames": frames, **counts, **info, "skipped_csv": str(report.path)}
    atomic_write_json(out_dir / "summary.json", summary)
    log.info("extracted %d frames: %d videos done, %d already finished, %d partial, %d failed (see %s)", frames,
             counts["done"], counts["resumed"], counts["partial"], counts["failed"], report.path)
    return summary


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    summary = run_stage(run, args, default_out_dir(args))
    if summary["frames"] == 0:
        log.error("no video could be decoded; see %s", summary["skipped_csv"])
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()
