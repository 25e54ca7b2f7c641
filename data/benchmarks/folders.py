"""A generic bona fide / attack folder tree (your own data, NUAA-style sets, ...).

Layout::

    ROOT/[train/ dev/ test/]                 optional split folders (all three, or none)
        live/ <items>                         ("real", "bonafide" also accepted)
        attack/<attack type>/ <items>         ("spoof", "fake" also accepted)

An item is a video file (.avi/.mp4/.mov), a single image, or a folder of images (an image-folder
row). A folder holding videos or item folders is a subject folder: its name is the subject of
everything inside. Items outside a subject folder take their subject from the name: the part
before the first ``_``, ``-`` or ``.`` (``--subject-pattern`` overrides this regular expression; its
first group is the subject). The same subject name under live/ and attack/ is the same person.

Without split folders the subjects are split seeded and disjoint: ``--dev-fraction`` of them to dev,
``--test-fraction`` to test, the rest to train. With split folders but no dev/, dev is carved from
train. A subject in two split folders is an error.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

from data.benchmarks.common import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, Built, carve_dev, is_ignored, item,
                                    require_dir)
from data.protocols import SPLIT_NAMES
from utils.io import InputError

LIVE_NAMES = ("live", "real", "bonafide", "bona_fide")
ATTACK_NAMES = ("attack", "spoof", "fake")
DEFAULT_SUBJECT_PATTERN = r"^([^_.\-]+)"
DEFAULT_TEST_FRACTION = 0.3


def _is_media(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES


def _is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def _items_in(folder: Path, subject: str | None, pattern: re.Pattern, root: Path):
    """(relative path, subject) of every item under ``folder``; subject folders recurse once."""
    out = []
    for path in sorted(folder.iterdir()):
        if is_ignored(path):
            continue
        if _is_media(path) or _is_image_folder(path):
            name_subject = subject
            if name_subject is None:
                m = pattern.search(path.stem if path.is_file() else path.name)
                if m is None:
                    raise InputError(f"{path}: no subject in the name (pattern {pattern.pattern!r}); put it in a "
                                     "subject folder or pass --subject-pattern")
                name_subject = m[1] if m.groups() else m[0]
            out.append((path.relative_to(root).as_posix(), name_subject))
        elif path.is_dir() and subject is None:
            inner = _items_in(path, path.name, pattern, root)
            if not inner:
                raise InputError(f"{path}: subject folder without videos, images or image folders")
            out.extend(inner)
        else:
            raise InputError(f"{path}: unexpected {'folder' if path.is_dir() else 'file'} (expected videos "
                             f"{'/'.join(VIDEO_SUFFIXES)}, images {'/'.join(IMAGE_SUFFIXES)} or image folders)")
    return out


def _named(folder: Path, names) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.lower() in names)


def scan_split(folder: Path, split: str, pattern: re.Pattern, root: Path):
    live, attack = _named(folder, LIVE_NAMES), _named(folder, ATTACK_NAMES)
    if not live or not attack:
        raise InputError(f"{folder}: needs a live/ (or real/) and an attack/ (or spoof/) folder")
    rows = [item(p, 1, "", s, split) for d in live for p, s in _items_in(d, None, pattern, root)]
    for d in attack:
        kinds = sorted(p for p in d.iterdir() if not is_ignored(p))
        for kind in kinds:
            if not kind.is_dir():
                raise InputError(f"{kind}: expected one folder per attack type in {d} (e.g. {d / 'print'})")
            rows += [item(p, 0, kind.name.lower(), s, split) for p, s in _items_in(kind, None, pattern, root)]
    return rows


def split_subjects(rows, dev_fraction: float, test_fraction: float, seed: int):
    """Seeded subject-disjoint train/dev/test over the sorted subjects (at least one subject each)."""
    subjects = sorted({r.subject for r in rows})
    if len(subjects) < 3:
        raise InputError(f"{len(subjects)} subject(s): a subject-disjoint train/dev/test split needs at least 3")
    order = random.Random(seed).sample(subjects, len(subjects))
    n_test = min(len(subjects) - 2, max(1, round(test_fraction * len(subjects))))
    n_dev = min(len(subjects) - n_test - 1, max(1, round(dev_fraction * len(subjects))))
    split = {s: "test" for s in order[:n_test]}
    split.update({s: "dev" for s in order[n_test:n_test + n_dev]})
    return [replace(r, split=split.get(r.subject, "train")) for r in rows]


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0,
          test_fraction: float = DEFAULT_TEST_FRACTION, subject_pattern: str = DEFAULT_SUBJECT_PATTERN) -> list[Built]:
    if fold is not None:
        raise InputError("a folder dataset has no folds (drop --fold)")
    root = require_dir(Path(root), "dataset root")
    pattern = re.compile(subject_pattern)
    split_dirs = {s: d for s in SPLIT_NAMES for d in _named(root, (s,))}
    if split_dirs:
        if "train" not in split_dirs or "test" not in split_dirs:
            raise InputError(f"{root}: split folders need at least train/ and test/ (found {', '.join(split_dirs)})")
        rows = [r for s, d in split_dirs.items() for r in scan_split(d, s, pattern, root)]
        dev_rule = "the dataset's dev/ folder"
        if "dev" not in split_dirs:
            rows = carve_dev(rows, dev_fraction, seed)
            dev_rule = f"{dev_fraction:g} of the training subjects (seed {seed})"
    else:
        rows = split_subjects(scan_split(root, "train", pattern, root), dev_fraction, test_fraction, seed)
        dev_rule = f"subjects split {1 - dev_fraction - test_fraction:g}/{dev_fraction:g}/{test_fraction:g} (seed {seed})"
    name = protocol or "folders"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise InputError(f"--protocol {name!r}: a folder dataset uses it as the file name; letters, digits, _ . - only")
    return [Built(name, "folders", name, None, rows, root, {"dev": dev_rule, "subject_pattern": subject_pattern})]
