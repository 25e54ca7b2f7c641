"""CASIA-FASD / CASIA-MFSD (Zhang et al., ICB 2012): the official train/test split.

Layout of the release (docs/DATASETS.md)::

    ROOT/train_release/<1..20>/{1,2,HR_1,3,4,HR_2,5,6,HR_3,7,8,HR_4}.avi
    ROOT/test_release/<1..30>/...

File names (as bob.db.casia_fasd reads them): ``1``, ``2``, ``HR_1`` bona fide; ``3``, ``4``, ``HR_2``
warped print; ``5``, ``6``, ``HR_3`` cut print; ``7``, ``8``, ``HR_4`` video replay. ``HR_*`` is the
high quality camera, the numbered files the low and normal quality ones. Test subject folders are
numbered from 1 again; here they become subjects 21-50 (bob's rule), so subjects are unique.

Every subject folder reuses the same twelve file names, so each row points at a uniquely named link
into the dataset (``casia_<split>_<subject>_<file>.avi``, written by ``data/make_protocol.py``).
CASIA has no dev set: a seeded, subject-disjoint dev split is carved from the 20 training subjects.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.benchmarks.common import (Built, carve_dev, child_dir, compare_counts, counts, item, media_files,
                                    require_dir, unique_links)
from utils.io import InputError

NAME = re.compile(r"^(1|2|3|4|5|6|7|8|HR_1|HR_2|HR_3|HR_4)\.avi$", re.IGNORECASE)
ATTACK = {"1": "", "2": "", "HR_1": "", "3": "warped_print", "4": "warped_print", "HR_2": "warped_print",
          "5": "cut_print", "6": "cut_print", "HR_3": "cut_print", "7": "replay", "8": "replay", "HR_4": "replay"}
SPLITS = {"train_release": ("train", 0, 20), "test_release": ("test", 20, 30)}  # folder -> split, id offset, subjects
# The CASIA-FASD paper: 50 subjects (20 train, 30 test), 12 videos each (3 bona fide, 9 attacks).
EXPECTED = {"train/subjects": 20, "test/subjects": 30, "train/live": 60, "train/attack": 180,
            "test/live": 90, "test/attack": 270}


def scan(root: Path):
    root = require_dir(root, "CASIA-FASD root holding train_release/ and test_release/")
    rows = []
    for folder, (split, offset, n_subjects) in SPLITS.items():
        split_dir = child_dir(root, folder, f"CASIA-FASD {split} videos")
        for subject_dir in sorted((p for p in split_dir.iterdir() if not p.name.startswith(".")),
                                  key=lambda p: (len(p.name), p.name)):
            if not subject_dir.is_dir() or not subject_dir.name.isdigit() or not 1 <= int(subject_dir.name) <= n_subjects:
                raise InputError(f"{subject_dir}: unexpected entry in {split_dir} (expected subject folders "
                                 f"1..{n_subjects})")
            subject = f"{int(subject_dir.name) + offset:02d}"
            for path, m in media_files(subject_dir, NAME, f"CASIA-FASD subject folder {subject_dir}"):
                kind = ATTACK[m[1].upper()]
                rows.append(item(path.relative_to(root).as_posix(), kind == "", kind, subject, split))
    return rows


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0) -> list[Built]:
    if protocol not in (None, "", "all"):
        raise InputError(f"CASIA-FASD has one protocol (train/test of the release), got --protocol {protocol}")
    if fold is not None:
        raise InputError("CASIA-FASD has no folds (drop --fold)")
    root = Path(root)
    rows = scan(root)
    warnings = compare_counts(counts(rows), EXPECTED, f"CASIA-FASD {root}")
    rows = carve_dev(rows, dev_fraction, seed)
    rows, links = unique_links(rows, root, "casia")
    notes = {"dev": f"{dev_fraction:g} of the training subjects (seed {seed}); CASIA-FASD has no dev set",
             "links": "rows point at links named casia_<release folder>_<subject folder>_<file> into the dataset"}
    return [Built("casia", "casia", "all", None, rows, root, notes, warnings, links)]
