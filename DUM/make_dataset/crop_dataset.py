"""Face crops and aligned depth labels for the depth network (docs/ORIGINAL.md 1.8, docs/DATA_LAYOUT.md).

For every frame ``{split}_img_flod/<video>/<video>_<n>_scene.jpg`` of ``--data-root`` that has a
box (``{split}_bbox_flod``, the one ``x y w h`` format read by ``data.boxes``) and a full-frame depth
map (``{split}_depth_flod``), write to ``--crop-root``:

* the face crop, the box scaled about its centre, resized to ``--image-size`` (256);
* the depth map cropped with the same box and scale, resized to ``--map-size`` (32).

Scale: train frames draw it once per frame from ``--scale-range`` (1.2..1.4 in steps of
``--scale-step`` 0.1, as the original's ``randint(12, 14) / 10``) with an RNG keyed by
``(--seed, video, frame)``, so shards and reruns agree; dev and test use the fixed ``--test-scale``
1.3 (CDCN's rule; the original script only handled train). The original read the boxes as
``left right top bottom``; here the one box format is used (DATA_LAYOUT "Box format").

Frames without a box, or whose box misses the image, are listed in the skip report
(``<crop-root>/logs/crop_<split>/skipped.csv``) and skipped. A frame without a depth map still gets
its image crop (attack training frames need no map) and is listed too; the datasets leave such
frames out where a map is needed (live targets, dev/test scores). Outputs are written atomically
and a rerun skips frames already done. ``--protocol-dir`` copies the protocol lists into
``<crop-root>/protocols`` (train/test read them from there).

    python DUM/make_dataset/crop_dataset.py --data-root oulu_images --crop-root oulu_images_crop --split train
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.boxes import crop_face, read_box
from data.frames import SPLITS, box_name, depth_name, list_frames, list_videos, split_dirs
from utils.io import InputError, SkipReport, atomic_imwrite, atomic_write_bytes, read_image
from utils.run import parse_shard, run_stage, save_config, select_shard

log = logging.getLogger("DUM.crop_dataset")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default="oulu_images", help="full-frame tree ({split}_img/bbox/depth_flod)")
    p.add_argument("--crop-root", default="oulu_images_crop", help="output crop tree")
    p.add_argument("--split", nargs="+", default=["train"], choices=SPLITS, help="splits to crop")
    p.add_argument("--scale-range", nargs=2, type=float, default=[1.2, 1.4], metavar=("LOW", "HIGH"),
                   help="train crop scale range (box scaled about its centre), drawn once per frame")
    p.add_argument("--scale-step", type=float, default=0.1,
                   help="train scales are LOW, LOW+step, ..., HIGH (the original's {1.2, 1.3, 1.4}); 0 = continuous")
    p.add_argument("--test-scale", type=float, default=1.3, help="fixed crop scale of dev and test frames")
    p.add_argument("--image-size", type=int, default=256, help="side of the face crops")
    p.add_argument("--map-size", type=int, default=32, help="side of the depth crops (the network's map size)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the written crops")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-frame train scale")
    p.add_argument("--shard", type=parse_shard, default=(1, 1), help="K/N: crop every N-th video from the K-th")
    p.add_argument("--workers", type=int, default=4, help="threads reading/encoding images")
    p.add_argument("--protocol-dir", default=None,
                   help="protocol folder to copy into <crop-root>/protocols (e.g. oulu_images/protocols); off if unset")
    p.add_argument("--out-dir", default=None, help="log/config/skip report folder (default <crop-root>/logs/crop_<splits>)")
    return p


def frame_scale(video: str, frame: str, split: str, args) -> float:
    """The crop scale of one frame: fixed for dev/test, keyed-random for train (same in every shard/rerun)."""
    if split != "train":
        return float(args.test_scale)
    low, high = args.scale_range
    digest = hashlib.sha256(f"{video}/{frame}".encode()).digest()
    rng = np.random.default_rng([int(args.seed), int.from_bytes(digest[:8], "little")])
    if args.scale_step and args.scale_step > 0:
        steps = int(round((high - low) / args.scale_step))
        return round(low + args.scale_step * int(rng.integers(0, steps + 1)), 6)
    return float(rng.uniform(low, high))


def crop_frame(src: dict, dst: dict, video: str, frame: str, split: str, args) -> str:
    """Crop one frame; returns "done", "exists", "no_depth" (image cropped, no depth map to crop) or
    raises InputError with the reason.

    A frame without a depth map still gets its image crop: attack frames train towards an all-zero
    map and need none; the training dataset leaves out live frames that lack one (and lists them),
    and dev/test frames without one are scored with the face template's depth (DUM/denominator.py).
    """
    out_img = dst["img"] / video / frame
    out_depth = dst["depth"] / video / depth_name(frame)
    depth_path = src["depth"] / video / depth_name(frame)
    has_depth = depth_path.is_file()
    if out_img.is_file() and (out_depth.is_file() or not has_depth):
        return "exists" if out_depth.is_file() else "no_depth"
    box = read_box(src["bbox"] / video / box_name(frame))
    image = read_image(src["img"] / video / frame)
    scale = frame_scale(video, frame, split, args)
    face = crop_face(image, box, scale=scale, size=args.image_size)
    if has_depth:
        depth = read_image(depth_path, grey=True)
        if depth.shape[:2] != image.shape[:2]:
            raise InputError(f"{depth_path}: depth map is {depth.shape[1]}x{depth.shape[0]} but the frame is "
                             f"{image.shape[1]}x{image.shape[0]}; the box cannot be applied to both")
        # Depth first: a frame counts as done only when its image exists, so a crash in between reruns it.
        atomic_imwrite(out_depth, crop_face(depth, box, scale=scale, size=args.map_size), args.jpeg_quality)
    atomic_imwrite(out_img, face, args.jpeg_quality)
    return "done" if has_depth else "no_depth"


def copy_protocols(protocol_dir: Path, crop_root: Path) -> int:
    """Copy every ``*.txt`` / ``*.csv`` under ``protocol_dir`` to ``<crop_root>/protocols``, same sub-paths."""
    if not protocol_dir.is_dir():
        raise InputError(f"--protocol-dir {protocol_dir}: not a folder")
    copied = 0
    for src in sorted(protocol_dir.rglob("*")):
        if src.is_file() and src.suffix.lower() in (".txt", ".csv"):
            dst = crop_root / "protocols" / src.relative_to(protocol_dir)
            data = src.read_bytes()
            if not (dst.is_file() and dst.read_bytes() == data):
                atomic_write_bytes(dst, data)
                copied += 1
    return copied


def log_dir(args) -> Path:
    """Where config.json, log.txt and skipped.csv go: one folder per split set and shard."""
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.crop_root) / "logs" / f"crop_{'_'.join(args.split)}"
    if tuple(args.shard) != (1, 1):
        out_dir = out_dir.with_name(out_dir.name + f"_shard{args.shard[0]}of{args.shard[1]}")
    return out_dir


def run(args) -> dict:
    data_root, crop_root = Path(args.data_root), Path(args.crop_root)
    out_dir = log_dir(args)
    save_config(args, out_dir)
    low, high = args.scale_range
    if not 0 < low <= high:
        raise InputError(f"--scale-range {low} {high}: need 0 < LOW <= HIGH")
    report = SkipReport(out_dir / "skipped.csv")
    counts = {"done": 0, "exists": 0, "no_depth": 0, "skipped": 0}
    if args.protocol_dir:
        n = copy_protocols(Path(args.protocol_dir), crop_root)
        log.info("protocols: %d files copied to %s", n, crop_root / "protocols")
    for split in args.split:
        src, dst = split_dirs(data_root, split), split_dirs(crop_root, split)
        if not src["img"].is_dir():
            raise InputError(f"{src['img']}: no frame folder for split {split} (run data/extract_frame.py)")
        videos = select_shard(list_videos(src["img"]), args.shard)
        jobs = [(v, f) for v in videos for f in list_frames(src["img"] / v)]
        log.info("%s: %d videos, %d frames (shard %d/%d)", split, len(videos), len(jobs), *args.shard)

        def work(job, split=split, src=src, dst=dst):
            video, frame = job
            try:
                status = crop_frame(src, dst, video, frame, split, args)
            except InputError as exc:
                return "skipped", (f"{split}/{video}/{frame}", str(exc))
            if status == "no_depth":
                return status, (f"{split}/{video}/{frame}", "no depth map for this frame: image cropped only "
                                "(fine for attack training frames; not a live target; scored with the face template's depth)")
            return status, None

        with ThreadPoolExecutor(max(1, args.workers)) as pool, logging_redirect_tqdm():
            for status, problem in tqdm(pool.map(work, jobs), total=len(jobs), desc=f"crop {split}", unit="frame"):
                counts[status] += 1
                if problem:
                    report.add(*problem)
    report.write()
    log.info("crops: %d written, %d already there, %d without depth map (image only: not a live training "
             "target; scored with the face template's depth at test time), %d skipped (listed in %s)", counts["done"], counts["exists"],
             counts["no_depth"], counts["skipped"], report.path)
    return {**counts, "report": str(report.path), "out_dir": str(out_dir)}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, log_dir(args))


if __name__ == "__main__":
    main()
