"""SiW (Spoof in the Wild, Liu, Jourabloo and Liu, CVPR 2018): Protocols 1-3.

Layout of the release (docs/DATASETS.md)::

    ROOT/Train/live/<SSS>/<SSS>-<sensor>-1-<medium>-<session>.mov
    ROOT/Train/spoof/<SSS>/<SSS>-<sensor>-<2|3>-<medium>-<session>.mov
    ROOT/Test/...                                   (same, for the 75 test subjects)

File name fields: subject (three digits), sensor (1-2), type (1 live, 2 print, 3 replay), medium
(print 1-2, replay 1-4), session. ``.face`` box files beside the videos are ignored.

* Protocol 1: all training videos, of which only the first 60 frames are used for training
  (``notes["train_max_frames"]``), tested on all frames of all test videos.
* Protocol 2, folds 1-4: leave one replay medium out. Fold k trains on live + replay media != k and
  tests on live + replay medium k (print is not used).
* Protocol 3, folds 1-2: fold 1 trains on live + print and tests on live + replay; fold 2 the reverse.

SiW has no dev set: a seeded, subject-disjoint dev split is carved from the 90 training subjects.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.benchmarks.common import (Built, carve_dev, child_dir, compare_counts, counts, fold_names, item, media_files,
                                    require_dir)
from utils.io import InputError

# some copies carry an extra ".m" before the extension (public SiW loaders accept it for live videos)
NAME = re.compile(r"^(\d{3})-([12])-([123])-(\d)-(\d+)(?:\.m)?\.(mov|mp4|avi)$", re.IGNORECASE)
TYPES = {1: "", 2: "print", 3: "replay"}
MEDIA = {2: range(1, 3), 3: range(1, 5)}
SPLITS = {"Train": "train", "Test": "test"}
COMPANIONS = (".face", ".txt")
FOLDS = {"1": [None], "2": ["1", "2", "3", "4"], "3": ["1", "2"]}
P3_TRAIN = {"1": "print", "2": "replay"}  # fold -> attack type trained on; the other one is tested
TRAIN_MAX_FRAMES_P1 = 60
# The SiW paper: 165 subjects, 90 for training and 75 for testing, 4,478 videos.
EXPECTED = {"train/subjects": 90, "test/subjects": 75, "all/videos": 4478}


def scan(root: Path) -> list[tuple[str, str, int, int, int, str]]:
    """(split, subject, type, medium, sensor, path relative to root) of every video; strict names."""
    root = require_dir(root, "SiW root holding Train/ and Test/")
    videos, seen = [], {}
    for folder, split in SPLITS.items():
        split_dir = child_dir(root, folder, f"SiW {folder} split")
        for kind in ("live", "spoof"):
            kind_dir = child_dir(split_dir, kind, f"SiW {folder}/{kind} videos")
            for subject_dir in sorted(p for p in kind_dir.iterdir() if not p.name.startswith(".")):
                if not subject_dir.is_dir() or not subject_dir.name.isdigit():
                    raise InputError(f"{subject_dir}: unexpected entry in {kind_dir} (expected subject folders "
                                     "such as 006)")
                for path, m in media_files(subject_dir, NAME, f"SiW subject folder {subject_dir}", COMPANIONS):
                    videos.append(_video(root, path, m, split, kind, subject_dir.name))
                if seen.setdefault(subject_dir.name, split) != split:
                    raise InputError(f"{subject_dir}: subject {subject_dir.name} is in both Train and Test")
    if not videos:
        raise InputError(f"{root}: no SiW videos found")
    return videos


def _video(root: Path, path: Path, m: re.Match, split: str, kind: str, folder_subject: str):
    subject, sensor, kind_id, medium = m[1], int(m[2]), int(m[3]), int(m[4])
    if int(subject) != int(folder_subject):
        raise InputError(f"{path}: subject {subject} in the name but the video is in folder {folder_subject}")
    if (kind_id == 1) != (kind == "live"):
        raise InputError(f"{path}: type {kind_id} ({TYPES[kind_id] or 'live'}) does not belong in {kind}/")
    if kind_id in MEDIA and medium not in MEDIA[kind_id]:
        raise InputError(f"{path}: {TYPES[kind_id]} medium must be {MEDIA[kind_id].start}..{MEDIA[kind_id].stop - 1}, "
                         f"got {medium}")
    return split, subject, kind_id, medium, sensor, path.relative_to(root).as_posix()


def _keep(protocol: str, fold: str | None, split: str, kind_id: int, medium: int) -> bool:
    if kind_id == 1 or protocol == "1":
        return True
    if protocol == "2":
        return kind_id == 3 and ((medium == int(fold)) == (split == "test"))
    trained = P3_TRAIN[fold]
    return (TYPES[kind_id] == trained) == (split == "train")


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0) -> list[Built]:
    protocol = str(protocol or "1")
    if protocol not in FOLDS:
        raise InputError(f"SiW protocols are 1, 2 and 3, got {protocol!r}")
    if protocol == "1" and fold is not None:
        raise InputError("SiW protocol 1 has no folds (drop --fold)")
    root = Path(root)
    videos = scan(root)
    official = [item(path, kind_id == 1, TYPES[kind_id], subject, split) for split, subject, kind_id, _, _, path in videos]
    warnings = compare_counts(counts(official), EXPECTED, f"SiW {root}")
    out = []
    for k in fold_names(FOLDS[protocol], fold, "SiW", protocol) if protocol != "1" else [None]:
        rows = [item(path, kind_id == 1, TYPES[kind_id], subject, split)
                for split, subject, kind_id, medium, _, path in videos if _keep(protocol, k, split, kind_id, medium)]
        rows = carve_dev(rows, dev_fraction, seed)
        notes = {"dev": f"{dev_fraction:g} of the training subjects (seed {seed}); SiW has no dev set"}
        if protocol == "1":
            notes["train_max_frames"] = TRAIN_MAX_FRAMES_P1
        elif protocol == "2":
            notes["held_out"] = f"replay medium {k}"
        else:
            notes["held_out"] = f"trained on {P3_TRAIN[k]}, tested on {'replay' if P3_TRAIN[k] == 'print' else 'print'}"
        name = f"siw_p{protocol}" + (f"_f{k}" if k else "")
        out.append(Built(name, "siw", protocol, k, rows, root, notes, warnings))
    return out
