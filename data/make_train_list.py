"""Stage 4: the generator's training list, ``<video>/<frame> <user> <domain> <file id>`` per line.

For every real video of the protocol, ``--frames-per-video`` frames (40, as the shipped
``train_list_oulu_p1.txt``) are drawn without replacement from the video's frames, in frame
order. The draw is seeded per video from ``(--seed, video id)``, so the list is byte-identical across
runs and a video's frames do not change when other videos come or go. A video with fewer frames
than asked contributes all of them (the original crashed on it and never drew the first frame).
With ``--require-box`` (default) only frames whose box file reads back are candidates, because the
generator crops every frame with its box.

Columns: the user (OULU ``UU``; the CSV ``subject``), the domain (1 live, 0 spoof) and the file id
(OULU 1-5; for a CSV protocol 1 for bona fide and 2, 3, ... for its attack types in sorted order,
written to ``file_ids.json`` in the run folder). The generator's spoof class is ``file id - 2``
and it pairs each spoof frame with a live frame of the same user, so spoof frames of a user without
live frames are left out and reported. Generated items (``p...``) are not used.

    python data/make_train_list.py --data-root oulu_images --out train_list/train_list_oulu_p1.txt
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import zlib

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.boxes import read_box
from data.frames import SPLITS, box_name, list_frames, split_dirs
from data.protocol_args import is_oulu, protocol_arg, protocol_tag, resolve_list
from data.protocols import ProtocolItem, describe, filter_split, read_protocol
from utils.io import InputError, SkipReport, atomic_write_json, atomic_write_text
from utils.run import run_stage, save_config

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default="oulu_images", help="holds <split>_img_flod/ and <split>_bbox_flod/")
    p.add_argument("--protocol", type=protocol_arg, default=1,
                   help="OULU-NPU protocol 1-4 (its Train[_<fold>].txt under <data-root>/protocols/Protocol_<p>/), "
                        "or a protocol file: OULU lines or a CSV (its rows of --split)")
    p.add_argument("--fold", type=int, default=None, help="fold 1-6 of OULU-NPU protocols 3 and 4")
    p.add_argument("--out", default=None,
                   help="list file to write (default train_list/train_list_oulu_p<P>[_<fold>].txt; "
                        "runs/<csv stem>/train_list.txt for a .csv protocol)")
    p.add_argument("--split", default="train", choices=SPLITS,
                   help="frame tree to read; for a CSV protocol with a split column, the rows used")
    p.add_argument("--frames-per-video", type=int, default=40, help="frames drawn per video (all when fewer)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame draw")
    p.add_argument("--require-box", action=argparse.BooleanOptionalAction, default=True,
                   help="draw only frames that have a readable box file (the generator's loader needs it)")
    p.add_argument("--out-dir", default=None,
                   help="run folder for config.json, log.txt, skipped.csv, file_ids.json "
                        "(default <folder of --out>/logs/<name of --out>)")
    return p


def default_out(args) -> Path:
    if args.out:
        return Path(args.out)
    if str(args.protocol).lower().endswith(".csv"):
        return Path("runs") / protocol_tag(args.protocol) / "train_list.txt"
    tag = f"p{args.protocol}" if is_oulu(args.protocol) else "p1"
    return Path("train_list") / f"train_list_oulu_{tag}{f'_{args.fold}' if args.fold else ''}.txt"


def default_out_dir(args) -> Path:
    out = default_out(args)
    return Path(args.out_dir) if args.out_dir else out.parent / "logs" / out.stem


def file_id_map(items: list[ProtocolItem]) -> dict[str, int]:
    """Attack instrument -> file id: OULU's own ids; for CSV protocols 1 bona fide, 2.. sorted attack types."""
    if all(item.file_id for item in items):
        return {item.pai or "bona fide": item.file_id for item in sorted(items, key=lambda i: i.file_id)}
    types = sorted({item.pai for item in items if not item.is_live})
    return {"bona fide": 1, **{name: 2 + i for i, name in enumerate(types)}}


def draw_frames(frames: list[str], count: int, seed: int, video: str) -> list[str]:
    """``count`` frames without replacement, in frame order; all of them when there are fewer."""
    if len(frames) <= count:
        return list(frames)
    rng = np.random.default_rng([seed, zlib.crc32(video.encode("utf-8"))])
    return [frames[i] for i in np.sort(rng.choice(len(frames), size=count, replace=False))]


def usable_frames(video: str, dirs: dict[str, Path], require_box: bool, report: SkipReport) -> tuple[list[str], int]:
    """(frames that can be used, number of frames without a box file)."""
    frames = list_frames(dirs["img"] / video)
    if not require_box:
        return frames, 0
    keep, missing = [], 0
    for frame in frames:
        path = dirs["bbox"] / video / box_name(frame)
        if not path.is_file():
            missing += 1
            continue
        try:
            read_box(path)
        except InputError as exc:
            report.add(path, str(exc))
            continue
        keep.append(frame)
    return keep, missing


def build_lines(items: list[ProtocolItem], args, report: SkipReport) -> tuple[list[str], dict]:
    dirs = split_dirs(args.data_root, args.split)
    ids = file_id_map(items)
    per_video: list[tuple[ProtocolItem, list[str]]] = []
    no_box = 0
    with logging_redirect_tqdm():
        for item in tqdm(items, unit="video", desc="train list"):
            if not item.subject or any(c.isspace() for c in item.subject):
                report.add(item.where, f"video {item.video_id}: no subject, or one with spaces "
                                       "(the list's user column)")
                continue
            frames, missing = usable_frames(item.video_id, dirs, args.require_box, report)
            no_box += missing
            if not frames:
                has_frames = bool(list_frames(dirs["img"] / item.video_id))
                why = "no frames with a box" if args.require_box and has_frames else "no frames"
                report.add(item.where, f"video {item.video_id}: {why} in {dirs['img'] / item.video_id}")
                continue
            per_video.append((item, draw_frames(frames, args.frames_per_video, args.seed, item.video_id)))
    live_users = {item.subject for item, _ in per_video if item.is_live}
    lines = []
    for item, frames in per_video:
        if not item.is_live and item.subject not in live_users:
            report.add(item.where, f"video {item.video_id}: user {item.subject} has no live frames to pair with")
            continue
        fid = ids[item.pai or "bona fide"] if not item.file_id else item.file_id
        lines += [f"{item.video_id}/{frame} {item.subject} {item.label} {fid}" for frame in frames]
    return lines, {"file_ids": ids, "frames_without_box": no_box}


def run(args) -> dict:
    if args.frames_per_video < 1:
        raise InputError(f"--frames-per-video must be >= 1, got {args.frames_per_video}")
    args.out = str(default_out(args))
    if is_oulu(args.protocol):
        args.protocol = str(resolve_list(args.protocol, args.split, Path(args.data_root) / "protocols", args.fold))
    img_dir = split_dirs(args.data_root, args.split)["img"]
    if not img_dir.is_dir():
        raise InputError(f"{img_dir}: no frame folder (run data/extract_frame.py --split {args.split})")
    out_dir = default_out_dir(args)
    args.out_dir = str(out_dir)
    save_config(args, out_dir)
    report = SkipReport(out_dir / "skipped.csv")
    items = read_protocol(args.protocol)
    generated = [item for item in items if item.generated]
    items = [item for item in filter_split(items, args.split) if not item.generated]
    if generated:
        log.info("%s: leaving out %d generated items", args.protocol, len(generated))
    log.info("%s: %s", args.protocol, describe(items))
    lines, info = build_lines(items, args, report)
    report.write()
    atomic_write_json(out_dir / "file_ids.json", info["file_ids"])
    if not lines:
        raise InputError(f"{args.protocol}: no usable frames for any video (see {report.path})")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    live = sum(line.split(" ")[2] == "1" for line in lines)
    summary = {"lines": len(lines), "live": live, "spoof": len(lines) - live,
               "videos": len({line.split("/", 1)[0] for line in lines}), "skipped": len(report),
               "frames_without_box": info["frames_without_box"], "out": str(args.out)}
    atomic_write_json(out_dir / "summary.json", summary)
    log.info("wrote %s: %d lines (%d live, %d spoof) from %d videos; %d skipped (see %s); %d frames had no box",
             args.out, len(lines), live, len(lines) - live, summary["videos"], len(report), report.path,
             info["frames_without_box"])
    return summary


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, default_out_dir(args))


if __name__ == "__main__":
    main()
