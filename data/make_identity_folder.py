"""Identity-labelled face folder from a generator training list, for ``train_lightcnn.py``.

Crops every listed frame with its box (scale 1.0, as the generator sees faces) and writes
``<out>/<user>/<video>_<n>.jpg`` at ``--size`` pixels. Users whose published LightCNN checkpoint is
gone can train the identity network on their own training subjects this way (the test subjects
are never in a training list); the demo pipeline does the same on its portraits.

    python data/make_identity_folder.py --data-root oulu_images --train-list train_list/train_list_oulu_p1.txt --out faces
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.boxes import crop_face, read_box
from data.frames import SPLITS, box_name, split_dirs
from utils.io import InputError, SkipReport, atomic_imwrite, read_image, read_text_file
from utils.run import run_stage, save_config, setup_logging

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default="oulu_images", help="holds <split>_img_flod/ and <split>_bbox_flod/")
    p.add_argument("--split", default="train", choices=SPLITS, help="frame tree the list refers to")
    p.add_argument("--train-list", default="train_list/train_list_oulu_p1.txt",
                   help="generator training list (<video>/<frame> <user> <domain> <file id>)")
    p.add_argument("--out", default="faces", help="output folder, one sub-folder per user")
    p.add_argument("--size", type=int, default=144, help="side of the written faces (LightCNN crops 128 of 144)")
    p.add_argument("--out-dir", default=None, help="run folder (default <out>_logs, outside <out> so it is not taken for an identity)")
    return p


def parse_list(path: Path) -> list[tuple[str, str]]:
    """(relative frame path, user) per line; a malformed line is an error naming file and line."""
    text = read_text_file(path, "no such training list (run data/make_train_list.py first)")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or "/" not in parts[0]:
            raise InputError(f"{path}:{number}: expected '<video>/<frame> <user> <domain> <file id>', got {line!r}")
        rows.append((parts[0], parts[1]))
    return rows


def run_dir(args) -> Path:
    return Path(args.out_dir) if args.out_dir else Path(args.out).with_name(Path(args.out).name + "_logs")


def run(args) -> dict:
    out = Path(args.out)
    dirs = split_dirs(args.data_root, args.split)
    rows = parse_list(Path(args.train_list))
    report = SkipReport(run_dir(args) / "skipped.csv")
    written = existing = 0
    with logging_redirect_tqdm():
        for rel, user in tqdm(rows, desc="identity faces", unit="face"):
            video, frame = rel.split("/", 1)
            target = out / user / f"{Path(frame).stem}.jpg"
            if target.is_file():
                existing += 1
                continue
            try:
                image = read_image(dirs["img"] / rel)
                face = crop_face(image, read_box(dirs["bbox"] / video / box_name(frame)), 1.0, args.size)
            except InputError as exc:
                report.add(rel, str(exc))
                continue
            atomic_imwrite(target, face)
            written += 1
    report.write()
    users = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    log.info("%d faces written, %d already there, %d skipped, %d identities in %s",
             written, existing, len(report), len(users), out)
    if not users:
        raise InputError(f"no face could be written to {out}; see {report.path}")
    return {"written": written, "existing": existing, "skipped": len(report), "identities": len(users)}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(run_dir(args))
    save_config(args, run_dir(args))
    return run_stage(run, args)


if __name__ == "__main__":
    main()
