"""OULU-NPU's protocol folders, folds and subsets: Protocols 1-4, six folds (left-out phone) for 3 and 4.

The files themselves are read by data/protocols.py; this module finds them under a dataset's
``Protocols`` folder (any case: copies of the dataset differ), names them (``Train.txt``,
``Dev_3.txt``), and knows which phones, sessions, users and files each protocol split holds, to
write lists for data that has none (the demo).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

from data.protocols import (ATTACK_TYPE, FILE_IDS, OULU_LABEL_TEXT, PAI, PHONES, SESSIONS, SPLIT_NAMES, ProtocolItem,
                            parse_oulu_id)
from utils.io import InputError


def _check_protocol_fold(protocol: int, fold: int | None) -> None:
    if protocol not in (1, 2, 3, 4):
        raise InputError(f"OULU-NPU protocol must be 1, 2, 3 or 4, got {protocol}")
    if protocol in (1, 2) and fold is not None:
        raise InputError(f"OULU-NPU protocol {protocol} has no folds, got fold {fold}")
    if protocol in (3, 4) and fold not in range(1, 7):
        raise InputError(f"OULU-NPU protocol {protocol} needs a fold 1..6, got {fold}")


def oulu_folds() -> Iterator[tuple[int, int | None]]:
    """Every (protocol, fold) of OULU-NPU: (1, None), (2, None), (3, 1..6), (4, 1..6)."""
    yield 1, None
    yield 2, None
    for protocol in (3, 4):
        for fold in range(1, 7):
            yield protocol, fold


def _find_child(folder: Path, pattern: re.Pattern, is_dir: bool) -> Path | None:
    if not folder.is_dir():
        return None
    hits = sorted(p for p in folder.iterdir() if pattern.match(p.name) and (p.is_dir() if is_dir else p.is_file()))
    return hits[0] if hits else None


def oulu_protocol_dir(protocol_root, protocol: int) -> Path:
    """The ``Protocol_<p>`` folder under ``protocol_root`` (or ``protocol_root`` itself), any case."""
    root = Path(protocol_root)
    pattern = re.compile(rf"^protocol[_ -]?{int(protocol)}$", re.IGNORECASE)
    if pattern.match(root.name) and root.is_dir():
        return root
    found = _find_child(root, pattern, is_dir=True)
    if found is None:
        raise InputError(f"{root}: no Protocol_{protocol} folder (expected {root / f'Protocol_{protocol}'})")
    return found


def oulu_file_name(split: str, fold: int | None = None) -> str:
    """``Train.txt`` / ``Dev_3.txt``: the file name OULU-NPU uses for a split (and fold)."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    return f"{split.capitalize()}{'' if fold is None else f'_{fold}'}.txt"


def oulu_protocol_files(protocol_root, protocol: int, fold: int | None = None) -> dict[str, Path]:
    """{"train", "dev", "test"} -> protocol file of OULU-NPU protocol 1-4 (fold 1-6 for 3 and 4).

    ``protocol_root`` holds ``Protocol_1`` .. ``Protocol_4`` (or is one of them). File and folder
    names match case-insensitively, since copies of the dataset differ in case.
    """
    _check_protocol_fold(protocol, fold)
    folder = oulu_protocol_dir(protocol_root, protocol)
    files, missing = {}, []
    for split in SPLIT_NAMES:
        name = oulu_file_name(split, fold)
        found = _find_child(folder, re.compile(rf"^{re.escape(name)}$", re.IGNORECASE), is_dir=False)
        if found is None:
            missing.append(name)
        else:
            files[split] = found
    if missing:
        raise InputError(f"{folder}: missing protocol file(s) {', '.join(missing)} for protocol {protocol}"
                         + (f" fold {fold}" if fold is not None else ""))
    return files


def oulu_protocol_subset(protocol: int, fold: int | None, split: str) -> dict[str, list[int]]:
    """Phones, sessions, users and file ids of one OULU-NPU protocol split.

    From the OULU-NPU paper (Boulkenafet et al., FG 2017), used only to build lists for data that
    has no protocol files (the demo); the dataset's own files always take precedence.
    Users: train 1-20, dev 21-35, test 36-55. P1 unseen session (test session 3); P2 unseen
    instrument (train/dev files 1,2,4, test 1,3,5); P3 leave camera ``fold`` out; P4 all three.
    """
    _check_protocol_fold(protocol, fold)
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    users = {"train": range(1, 21), "dev": range(21, 36), "test": range(36, 56)}[split]
    test = split == "test"
    phones, sessions, files = list(PHONES), list(SESSIONS), list(FILE_IDS)
    if protocol in (1, 4):
        sessions = [3] if test else [1, 2]
    if protocol in (2, 4):
        files = [1, 3, 5] if test else [1, 2, 4]
    if protocol in (3, 4):
        phones = [fold] if test else [p for p in PHONES if p != fold]
    return {"phones": phones, "sessions": sessions, "users": list(users), "files": files}


def make_oulu_protocol(video_ids: Iterable[str], users=None, sessions=None, phones=None,
                       files=None) -> list[ProtocolItem]:
    """Items for the OULU-NPU ids among ``video_ids`` that fall in the given subsets (None = all).

    Sorted as the dataset lists them (phone, session, user, file) and labelled +1/-1/-2, so
    :func:`write_protocol` writes a file that reads back as the dataset's own. Users may be given as
    ints or two-digit strings. A name that is not an OULU id is an InputError.
    """
    keep = {"phone": _as_set(phones), "session": _as_set(sessions), "user": _as_set(users), "file_id": _as_set(files)}
    parsed = []
    for video_id in sorted(set(video_ids)):
        oid = parse_oulu_id(video_id)
        values = {"phone": oid.phone, "session": oid.session, "user": int(oid.user), "file_id": oid.file_id}
        if all(allowed is None or values[key] in allowed for key, allowed in keep.items()):
            parsed.append((oid.phone, oid.session, int(oid.user), oid.file_id, video_id))
    items = []
    for phone, session, user, file_id, video_id in sorted(parsed):
        raw = OULU_LABEL_TEXT[ATTACK_TYPE[file_id]]
        items.append(ProtocolItem(video_id=video_id, label=int(file_id == 1), attack_type=ATTACK_TYPE[file_id],
                                  pai=PAI[file_id], subject=f"{user:02d}", file_id=file_id, path=video_id,
                                  raw_label=raw, fmt="oulu"))
    return items


def _as_set(values) -> set[int] | None:
    return None if values is None else {int(v) for v in values}
