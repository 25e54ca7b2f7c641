"""What every benchmark builder shares: the result type, file listing with strict name checks, the
seeded subject-disjoint dev split, the split-disjointness check and the count comparison.

A builder reads a dataset as its owners distribute it and returns a :class:`Built` per fold: the
rows of one CSV protocol (``data/protocols.py``: path, label, attack_type, subject, split) plus
what is needed to check and document them. See docs/DATASETS.md for each dataset.
"""
from __future__ import annotations

import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from data.protocols import SPLIT_NAMES, ProtocolItem, video_id_from_path
from utils.io import InputError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_DEV_FRACTION = 0.2  # share of training subjects moved to dev when a dataset has no dev set


@dataclass
class Built:
    """One fold of one benchmark protocol, ready to be written as a CSV protocol."""

    name: str                      # file stem: siw_p2_f1, casia, replay_grandtest, ...
    dataset: str
    protocol: str
    fold: str | None
    items: list[ProtocolItem]
    video_root: Path               # the CSV paths are relative to this folder
    notes: dict = field(default_factory=dict)               # held-out type, frame limits, dev rule, source
    warnings: list[str] = field(default_factory=list)       # counts that differ from the dataset's paper
    links: dict[str, Path] = field(default_factory=dict)    # link name -> dataset file (ids that collide)


def item(path: str, label: int, attack_type: str, subject: str, split: str) -> ProtocolItem:
    """A CSV protocol row; ``path`` is relative to the builder's video root (forward slashes)."""
    path = str(path).replace("\\", "/")
    return ProtocolItem(video_id=video_id_from_path(path), label=int(label), attack_type="" if label else attack_type,
                        pai="" if label else attack_type, subject=str(subject), split=split, path=path,
                        raw_label=str(int(label)), fmt="csv")


def require_dir(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise InputError(f"{path}: missing folder ({what})")
    return Path(path)


def child_dir(parent: Path, name: str, what: str) -> Path:
    """``parent/name`` matched case-insensitively (copies of datasets differ in case); InputError if absent."""
    require_dir(parent, what)
    hits = sorted(p for p in Path(parent).iterdir() if p.is_dir() and p.name.lower() == name.lower())
    if not hits:
        raise InputError(f"{Path(parent) / name}: missing folder ({what})")
    return hits[0]


def is_ignored(path: Path, companions: Sequence[str] = ()) -> bool:
    """Hidden files and the dataset's companion files (e.g. SiW's ``.face`` boxes) are not data."""
    return path.name.startswith(".") or path.suffix.lower() in companions


def media_files(folder: Path, pattern: re.Pattern, what: str, companions: Sequence[str] = (),
                suffixes: Sequence[str] = VIDEO_SUFFIXES) -> list[tuple[Path, re.Match]]:
    """Sorted (file, name match) of every video in ``folder``; any other file or sub-folder that is not
    ignored, or a video whose name does not match ``pattern``, is an InputError naming it."""
    require_dir(folder, what)
    out = []
    for path in sorted(Path(folder).iterdir()):
        if is_ignored(path, companions):
            continue
        if path.is_dir():
            raise InputError(f"{path}: unexpected folder in {what} (expected only video files)")
        m = pattern.match(path.name) if path.suffix.lower() in suffixes else None
        if m is None:
            raise InputError(f"{path}: unexpected file name in {what} (expected names like {pattern.pattern})")
        out.append((path, m))
    return out


def carve_dev(items: list[ProtocolItem], fraction: float, seed: int) -> list[ProtocolItem]:
    """Move a seeded ``fraction`` of the training *subjects* with all their rows to dev; test rows are
    untouched. Subjects are drawn per group of the same kind (the same labels and attack types:
    datasets such as SiW-M have no subject ids, each video is its own subject, so every attack type
    keeps training videos), at least one and never all of a group of two or more, with
    ``random.Random(seed).sample`` over the sorted subjects of each group in turn, so the same
    training subjects give the same dev set in every fold."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"--dev-fraction must lie in (0, 1), got {fraction}")
    kinds: dict[str, set] = {}
    for it in items:
        if it.split == "train":
            kinds.setdefault(it.subject, set()).add(it.attack_type or "live")
    if len(kinds) < 2:
        raise InputError(f"cannot carve a subject-disjoint dev set from {len(kinds)} training subject(s)")
    groups: dict[tuple, list[str]] = {}
    for subject, kind in kinds.items():
        groups.setdefault(tuple(sorted(kind)), []).append(subject)
    rng, dev = random.Random(seed), set()
    for _, group in sorted(groups.items()):
        if len(group) >= 2:
            dev.update(rng.sample(sorted(group), min(len(group) - 1, max(1, round(fraction * len(group))))))
    return [replace(it, split="dev") if it.split == "train" and it.subject in dev else it for it in items]


def check_disjoint(items: Iterable[ProtocolItem], source: str) -> None:
    """InputError naming a subject (and one path of it per split) found in two splits."""
    where: dict[str, dict[str, str]] = {}
    for it in items:
        where.setdefault(it.subject, {}).setdefault(it.split, it.path)
    for subject, splits in sorted(where.items()):
        if len(splits) > 1:
            shown = "; ".join(f"{s}: {p}" for s, p in sorted(splits.items()))
            raise InputError(f"{source}: subject {subject!r} is in {len(splits)} splits ({shown})")


def check_splits(items: list[ProtocolItem], source: str) -> None:
    """Every split present, each with bona fide and attack rows; video ids unique."""
    ids = Counter(it.video_id for it in items)
    dup = sorted(v for v, n in ids.items() if n > 1)
    if dup:
        paths = [it.path for it in items if it.video_id == dup[0]][:3]
        raise InputError(f"{source}: video id {dup[0]!r} names {ids[dup[0]]} files ({', '.join(paths)})")
    for split in SPLIT_NAMES:
        rows = [it for it in items if it.split == split]
        if not any(it.is_live for it in rows) or all(it.is_live for it in rows):
            raise InputError(f"{source}: split {split} needs bona fide and attack rows, got "
                             f"{sum(it.is_live for it in rows)} bona fide and {sum(not it.is_live for it in rows)} attacks")


def counts(items: Iterable[ProtocolItem]) -> dict[str, int]:
    """Count keys: ``<split>/videos``, ``<split>/live``, ``<split>/attack``, ``<split>/<attack type>``,
    ``<split>/subjects`` and ``all/...`` over every split."""
    out: Counter = Counter()
    subjects: dict[str, set] = {}
    for it in items:
        for split in (it.split, "all"):
            out[f"{split}/videos"] += 1
            out[f"{split}/{'live' if it.is_live else 'attack'}"] += 1
            if not it.is_live:
                out[f"{split}/{it.attack_type}"] += 1
            subjects.setdefault(split, set()).add(it.subject)
    for split, subs in subjects.items():
        out[f"{split}/subjects"] = len(subs)
    return dict(sorted(out.items()))


def compare_counts(actual: dict[str, int], expected: dict[str, int], source: str) -> list[str]:
    """A warning line for every stated count that differs (a partial copy of a dataset still builds)."""
    warnings = []
    for key, want in sorted(expected.items()):
        got = actual.get(key, 0)
        if got != want:
            warnings.append(f"{source}: {key} is {got}, the dataset's paper states {want}")
    if warnings:
        log.warning("counts differ from the dataset's paper (a partial copy?):\n  %s", "\n  ".join(warnings))
    return warnings


def count_table(items: Sequence[ProtocolItem]) -> str:
    """Rows per split: bona fide, attacks per type, subjects (what make_protocol prints)."""
    types = sorted({it.attack_type for it in items if not it.is_live})
    head = ["split", "live", "attack"] + types + ["subjects"]
    c = counts(items)
    rows = [head]
    for split in SPLIT_NAMES + ("all",):
        rows.append([split] + [str(c.get(f"{split}/{k}", 0)) for k in ["live", "attack"] + types + ["subjects"]])
    width = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, width)) for r in rows)


def unique_links(items: list[ProtocolItem], root: Path, prefix: str) -> tuple[list[ProtocolItem], dict[str, Path]]:
    """Datasets that reuse file names in every subject folder (CASIA-FASD's ``1.avi`` ...) would give
    every stage colliding video ids; rename each row to ``<prefix>_<path with / as _>`` and return
    the link name -> dataset file map (make_protocol writes the links)."""
    links, out = {}, []
    for it in items:
        stem, _, suffix = it.path.rpartition(".")
        name = f"{prefix}_{stem.replace('/', '_')}.{suffix}"
        links[name] = Path(root) / it.path
        out.append(replace(it, path=name, video_id=video_id_from_path(name)))
    return out, links


def fold_names(folds: Sequence[str], fold: str | None, dataset: str, protocol: str) -> list[str]:
    """The folds to build: all, or the one asked for (by number 1..N or by name)."""
    if fold is None:
        return list(folds)
    text = str(fold)
    if text.isdigit() and 1 <= int(text) <= len(folds):
        return [folds[int(text) - 1]]
    if text in folds:
        return [text]
    raise InputError(f"{dataset} protocol {protocol} has folds 1..{len(folds)} ({', '.join(folds)}), got {fold!r}")
