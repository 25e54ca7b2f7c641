"""Build a small OULU-NPU-style demo dataset from public-domain portraits the dependencies ship.

OULU-NPU may not be redistributed, so the demo pipeline runs on videos made here. The data shows
every stage working end to end; it measures nothing about accuracy: a few re-posed photographs of
three people with simulated attacks say nothing about how a model does on real presentation attacks.

Output (``--out``, default ``demo_data/``), laid out like the dataset:

* ``Train_files/``, ``Dev_files/``, ``Test_files/``: ``P_S_UU_F.avi`` (phone P, session S, two-digit
  user UU, file F), MJPG, ``--frames`` frames of ``--size`` at ``--fps``;
* ``protocols/Protocol_1/{Train,Dev,Test}.txt``: OULU lines ``+1,1_1_01_1`` (live), ``-1,...``
  (print, files 2/3), ``-2,...`` (replay, files 4/5) in every split. The shipped OULU Train/Dev files
  label replay ``-1`` too; every reader takes the attack type from the file id, so labelling by type
  changes nothing downstream. Users are disjoint across splits; train and dev use sessions 1 and 2,
  test session 3, as in OULU Protocol 1; all ``--phones`` phones in every split;
* ``users.csv`` (which portrait each user is), ``config.json``, ``log.txt``.

What each file id simulates (phone = camera model, session = room and light, both seeded): 1 live,
a person cut out of a public-domain portrait (scikit-image, matplotlib; ``--extra-portrait`` adds
yours) moving in a room; 2/3 print, the photo halftone-printed on a hand-held sheet (2 AM dots on
glossy paper, 3 inkjet droplets on matte paper); 4/5 replay, the photo playing on a screen (4 a desk
monitor, 5 a hand-held tablet), its sub-pixels sampled into moire. The first user of each split is
one photograph as shipped (train, dev and test each their own); every further user is a derived
identity (the face re-shaped, re-tinted, re-scaled) of the photos in turn, each used once
(``--separate-portraits``: of the split's own photo only). The
details: demo/render.py (portraits, rooms, camera, live), demo/attacks.py (print, replay),
demo/builder.py (users and videos). This script writes the dataset.

Each video draws from its own seed ``(--seed, P, S, UU, F)``: the same arguments give the same files
(byte-identical on one machine, whatever ``--workers``), and any video can be rebuilt alone. A rerun
skips videos already written (each is written under ``.partial/``, checked by decoding, and
renamed); other settings need ``--force``.

    python demo/make_demo_data.py --out demo_data --users 6 --frames 12 --size 320x240 --seed 0
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import csv
import io
import json
import logging
import multiprocessing
import os
import re
import time
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.oulu_protocols import make_oulu_protocol
from data.protocols import write_protocol
# split_users, _PRINTERS and print_sheet are imported for tests/test_demo_data.py, which reaches the
# builder's pieces through this module
from demo.attacks import _PRINTERS, print_sheet  # noqa: F401
from demo.builder import FILE_KIND, DemoBuilder, VideoSpec, assign_users, split_users  # noqa: F401
from demo.render import Portrait, UserLook, analyse_portraits, builtin_images, read_portrait_file
from utils.io import InputError, atomic_write_text
from utils.run import run_stage, save_config

log = logging.getLogger(__name__)

DATA_VERSION = 3  # bump when rendering changes, so a rerun does not mix old and new videos
SPLIT_FOLDERS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
SPLIT_SESSIONS = {"train": (1, 2), "dev": (1, 2), "test": (3,)}  # OULU-NPU Protocol 1
# keys of config.json that change the videos; a rerun with other values would mix two datasets
DATA_KEYS = ("data_version", "users", "phones", "frames", "size", "fps", "seed", "extra_portrait", "separate_portraits")
_VIDEO_RE = re.compile(r"^\d_\d_\d{2}_\d\.avi$")


# ---------------------------------------------------------------------------------------------------
# the dataset


def video_specs(looks: list[UserLook], phones: int) -> list[VideoSpec]:
    specs = []
    for look in looks:
        for phone in range(1, phones + 1):
            for session in SPLIT_SESSIONS[look.split]:
                for file_id in FILE_KIND:
                    vid = f"{phone}_{session}_{look.user:02d}_{file_id}"
                    specs.append(VideoSpec(vid, look.split, phone, session, look.user, file_id))
    return sorted(specs, key=lambda s: (s.split != "train", s.split != "dev", s.video_id))


def write_video(path: Path, frames: Iterator[np.ndarray], size, fps: float, n_frames: int, partial_dir: Path) -> None:
    """MJPG .avi written under ``partial_dir`` (outside the split folders a frame extractor walks),
    checked by decoding, then renamed into place."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    tmp = partial_dir / path.name  # VideoWriter picks the container from the .avi suffix
    writer = cv2.VideoWriter(str(tmp), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), tuple(size))
    try:
        if not writer.isOpened():
            raise OSError(f"{tmp}: OpenCV could not open an MJPG writer")
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)  # explicit, so OpenCV versions agree
        for frame in frames:
            writer.write(frame)
        writer.release()
        cap = cv2.VideoCapture(str(tmp))
        count = 0
        while cap.read()[0]:
            count += 1
        cap.release()
        if count != n_frames:
            raise OSError(f"{tmp}: wrote {n_frames} frames but {count} decode")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    finally:
        writer.release()
        if tmp.exists():
            tmp.unlink()


_WORKER: dict = {}  # per process: the builder and settings _make_video needs


def _init_worker(builder: DemoBuilder, fps: float, partial_dir: Path, own_process: bool) -> None:
    if own_process:
        cv2.setNumThreads(1)  # one video per process already fills the cores
    _WORKER.update(builder=builder, fps=fps, partial_dir=partial_dir)


def _make_video(job: tuple[VideoSpec, Path]) -> str:
    spec, path = job
    builder = _WORKER["builder"]
    write_video(path, builder.frames_of(spec), builder.size, _WORKER["fps"], builder.frames, _WORKER["partial_dir"])
    return spec.video_id


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # absent, or holds another run's partial file
        pass


def write_protocols(out: Path, specs: list[VideoSpec], looks: list[UserLook], phones: int) -> dict[str, Path]:
    folder = out / "protocols" / "Protocol_1"
    ids = [s.video_id for s in specs]
    paths = {}
    for split, name in (("train", "Train.txt"), ("dev", "Dev.txt"), ("test", "Test.txt")):
        users = [look.user for look in looks if look.split == split]
        items = make_oulu_protocol(ids, users=users, sessions=SPLIT_SESSIONS[split], phones=range(1, phones + 1))
        paths[split] = write_protocol(folder / name, items, fmt="oulu")
    return paths


def write_users(out: Path, looks: list[UserLook], portraits: list[Portrait]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user", "split", "portrait", "variant", "mirrored", "note"])
    for look in looks:
        note = ("the photo as shipped" if look.variant == 0 else
                "derived identity: the photo's face re-shaped (demo/render.py reshape_face), re-tinted, re-scaled")
        w.writerow([f"{look.user:02d}", look.split, portraits[look.portrait].name, look.variant, int(look.flip), note])
    atomic_write_text(out / "users.csv", buf.getvalue())
    return out / "users.csv"


# ---------------------------------------------------------------------------------------------------
# command line


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", str(text).strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"--size must look like WIDTHxHEIGHT (e.g. 320x240), got {text!r}")
    w, h = int(m[1]), int(m[2])
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be even and at least 64")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Build a small OULU-NPU-style demo dataset (videos + Protocol_1 lists) from public-domain "
                    "portraits shipped with scikit-image and matplotlib.",
        epilog="The demo data shows the pipeline working; it measures nothing about accuracy. "
               "See the module docstring (demo/make_demo_data.py) for what each video simulates.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="demo_data",
                   help="dataset folder: Train_files/, Dev_files/, Test_files/, protocols/, users.csv, "
                        "config.json, log.txt")
    p.add_argument("--users", type=int, default=6, help="users 01..N, split into disjoint train/dev/test thirds (3-55)")
    p.add_argument("--phones", type=int, default=1, help="phones 1..N, each a different simulated camera (1-6)")
    p.add_argument("--frames", type=int, default=12, help="frames per video")
    p.add_argument("--size", type=parse_size, default="320x240",
                   help="frame size WIDTHxHEIGHT; below 320x240 the faces on screens get too small for the "
                        "face mesh of the depth stage")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate written in the .avi (OULU-NPU: 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice; same seed, same videos")
    p.add_argument("--extra-portrait", action="append", default=[], metavar="IMAGE",
                   help="another portrait photo with one clear face (repeatable); you must have the right to use it")
    p.add_argument("--separate-portraits", action="store_true",
                   help="derive a split's further users from its own photo only (splits never share a person); "
                        "default: each split's first user is its own photo, the others derived identities of all "
                        "photos in turn (demo/builder.py assign_users)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes rendering videos in parallel (each video is seeded alone, so the output "
                        "does not depend on this)")
    p.add_argument("--force", action="store_true",
                   help="rebuild every video, and delete demo videos (P_S_UU_F.avi) the new settings do not make")
    return p


def check_args(args) -> None:
    if not 3 <= args.users <= 55:
        raise InputError(f"--users must be 3..55 (two-digit OULU user ids, at least one user per split), "
                         f"got {args.users}")
    if not 1 <= args.phones <= 6:
        raise InputError(f"--phones must be 1..6 (OULU-NPU phone ids), got {args.phones}")
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")


def check_previous(out: Path, config: dict) -> None:
    """A rerun into a finished folder must not mix videos from two configurations."""
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); delete it or rerun with --force") from None
    changed = [k for k in DATA_KEYS if old.get(k) != config.get(k)]
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise InputError(f"{out} holds demo data built with other settings ({diff}); "
                         "use another --out or rerun with --force")


def run(args) -> dict:
    check_args(args)
    out = Path(args.out)
    start = time.time()
    config = {"data_version": DATA_VERSION, **vars(args), "size": list(args.size), "out": str(out),
              "extra_portrait": [str(p) for p in args.extra_portrait]}
    if not args.force:
        check_previous(out, json.loads(json.dumps(config)))
    save_config(config, out)
    log.info("demo data: it shows the pipeline working and measures nothing about accuracy")
    portraits = analyse_portraits(builtin_images() + [read_portrait_file(p) for p in args.extra_portrait])
    looks = assign_users(args.users, len(portraits), args.seed, mixed=not args.separate_portraits)
    for look in looks:
        log.info("user %02d (%s): %s, variant %d%s", look.user, look.split, portraits[look.portrait].name,
                 look.variant, ", mirrored" if look.flip else "")
    specs = video_specs(looks, args.phones)
    wanted = {out / SPLIT_FOLDERS[s.split] / f"{s.video_id}.avi" for s in specs}
    if args.force:
        for folder in SPLIT_FOLDERS.values():
            for path in sorted((out / folder).glob("*.avi")):
                if _VIDEO_RE.match(path.name) and path not in wanted:
                    log.info("removing %s (not part of the new settings)", path)
                    path.unlink()
    builder = DemoBuilder(portraits, looks, args.size, args.frames, args.seed)
    jobs = [(spec, out / SPLIT_FOLDERS[spec.split] / f"{spec.video_id}.avi") for spec in specs]
    todo = [job for job in jobs if args.force or not job[1].is_file()]
    skipped = len(jobs) - len(todo)
    workers = max(1, min(args.workers, len(todo)))
    initargs = (builder, args.fps, out / ".partial", workers > 1)
    with logging_redirect_tqdm(), tqdm(total=len(todo), desc="demo videos", unit="video") as bar:
        if workers > 1:
            # spawn, not fork: MediaPipe's and OpenCV's threads in this process can deadlock a forked child
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
                for _ in pool.imap_unordered(_make_video, todo):
                    bar.update()
        else:
            _init_worker(*initargs)
            for job in todo:
                _make_video(job)
                bar.update()
    written = len(todo)
    _remove_empty(out / ".partial")
    protocols = write_protocols(out, specs, looks, args.phones)
    users_csv = write_users(out, looks, portraits)
    counts = {split: sum(s.split == split for s in specs) for split in SPLIT_FOLDERS}
    seconds = time.time() - start
    log.info("%d videos written, %d already there; %s; %.1f s", written, skipped,
             ", ".join(f"{k} {v}" for k, v in counts.items()), seconds)
    for split, path in protocols.items():
        log.info("%s protocol: %s", split, path)
    return {"out": str(out), "videos": counts, "written": written, "skipped": skipped,
            "protocols": {k: str(v) for k, v in protocols.items()}, "users_csv": str(users_csv), "seconds": seconds}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, args.out)


if __name__ == "__main__":
    main()
