"""OULU-NPU (Boulkenafet et al., FG 2017): Protocols 1-4 from the dataset's own lists, as CSV.

Layout of the release::

    ROOT/Train_files/P_S_UU_F.avi   ROOT/Dev_files/...   ROOT/Test_files/...
    ROOT/Protocols/Protocol_<p>/{Train,Dev,Test}[_<fold>].txt      (any case)

The dataset's lists decide every row (``data/protocols.py`` reads them); each listed video must
exist in its split's folder. The counts are compared with the subsets the OULU-NPU paper defines
(``oulu_protocol_subset``): users 20 / 15 / 20, and per protocol the sessions, phones and files.
"""
from __future__ import annotations

from pathlib import Path

from data.benchmarks.common import VIDEO_SUFFIXES, Built, child_dir, compare_counts, counts, fold_names, item
from data.oulu_protocols import oulu_protocol_files, oulu_protocol_subset
from data.protocols import SPLIT_NAMES, read_protocol
from utils.io import InputError

FOLDERS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
FOLDS = {1: [None], 2: [None], 3: [str(k) for k in range(1, 7)], 4: [str(k) for k in range(1, 7)]}


def expected_counts(protocol: int, fold: int | None) -> dict[str, int]:
    out = {}
    for split in SPLIT_NAMES:
        s = oulu_protocol_subset(protocol, fold, split)
        per_file = len(s["phones"]) * len(s["sessions"]) * len(s["users"])
        out[f"{split}/live"] = per_file * (1 in s["files"])
        out[f"{split}/attack"] = per_file * sum(f != 1 for f in s["files"])
        out[f"{split}/subjects"] = len(s["users"])
    return out


def _video(folder: Path, video_id: str, where: str) -> str:
    for suffix in VIDEO_SUFFIXES:
        for name in (video_id + suffix, video_id + suffix.upper()):
            if (folder / name).is_file():
                return f"{folder.name}/{name}"
    raise InputError(f"{where}: video {video_id} is listed but {folder / (video_id + '.avi')} does not exist")


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0) -> list[Built]:
    """One Built per fold; ``dev_fraction`` and ``seed`` are unused (OULU-NPU has its own dev set)."""
    try:
        p = int(protocol or 1)
    except ValueError:
        raise InputError(f"OULU-NPU protocols are 1-4, got {protocol!r}") from None
    if p not in FOLDS:
        raise InputError(f"OULU-NPU protocols are 1-4, got {protocol!r}")
    if p in (1, 2) and fold is not None:
        raise InputError(f"OULU-NPU protocol {p} has no folds (drop --fold)")
    root = Path(root)
    folders = {split: child_dir(root, name, f"OULU-NPU {split} videos") for split, name in FOLDERS.items()}
    protocol_root = child_dir(root, "Protocols", "OULU-NPU protocol lists (Protocol_1 ... Protocol_4)")
    out = []
    for k in fold_names(FOLDS[p], fold, "OULU-NPU", str(p)) if p in (3, 4) else [None]:
        files = oulu_protocol_files(protocol_root, p, None if k is None else int(k))
        rows = []
        for split in SPLIT_NAMES:
            for it in read_protocol(files[split]):
                if it.generated:
                    raise InputError(f"{it.where}: generated item {it.video_id} in the dataset's own list")
                rows.append(item(_video(folders[split], it.video_id, it.where), it.label, it.attack_type,
                                 it.subject, split))
        expected = expected_counts(p, None if k is None else int(k))
        warnings = compare_counts(counts(rows), expected, f"OULU-NPU protocol {p}" + (f" fold {k}" if k else ""))
        notes = {"dev": "the dataset's Dev list", "lists": {s: str(f) for s, f in files.items()}}
        out.append(Built(f"oulu_p{p}" + (f"_f{k}" if k else ""), "oulu", str(p), k, rows, root, notes, warnings))
    return out
