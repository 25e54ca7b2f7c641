"""SiW-M (Spoof in the Wild with Multiple attacks, Liu et al., CVPR 2019): leave one attack type out.

Layout of the release (docs/DATASETS.md)::

    ROOT/Live/Train/*.mov   ROOT/Live/Test/*.mov          bona fide, the official 80 / 20 split
    ROOT/Replay/*.mov   ROOT/Paper/*.mov                   one folder per attack type ...
    ROOT/Mask/{HalfMask,SiliconeMask,TransparentMask,PaperMask,MannequinHead}/*.mov
    ROOT/Makeup/{Obfuscation,Impersonation,Cosmetic}/*.mov
    ROOT/Partial/{FunnyeyeGlasses,PaperGlasses,PaperCut}/*.mov

Fold k (1-13, in the order of the paper's table, or the type's name) holds out attack type k: train
on Live/Train and the other twelve types, test on Live/Test and type k. The file names carry no
subject id, so every video is its own subject; the official live split is the release's folders.
SiW-M has no dev set: a seeded share of the training videos (live and the twelve training types) is
carved out as dev, so the threshold never sees the held-out type.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.benchmarks.common import (Built, carve_dev, child_dir, compare_counts, counts, fold_names, item, media_files,
                                    require_dir)
from utils.io import InputError

NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_\-]*)\.(mov|mp4|avi)$", re.IGNORECASE)
# attack type -> folder in the release, in the order of the SiW-M tables (Liu et al. 2019, Table 1)
TYPES = {
    "replay": "Replay", "print": "Paper",
    "half_mask": "Mask/HalfMask", "silicone_mask": "Mask/SiliconeMask", "transparent_mask": "Mask/TransparentMask",
    "paper_mask": "Mask/PaperMask", "mannequin": "Mask/MannequinHead",
    "obfuscation": "Makeup/Obfuscation", "impersonation": "Makeup/Impersonation", "cosmetic": "Makeup/Cosmetic",
    "funny_eye": "Partial/FunnyeyeGlasses", "paper_glasses": "Partial/PaperGlasses", "partial_paper": "Partial/PaperCut",
}
# Videos per attack type, 660 live, 968 attacks (Liu et al. 2019, Table 1).
EXPECTED = {"all/live": 660, "all/attack": 968, "all/replay": 99, "all/print": 118, "all/half_mask": 72,
            "all/silicone_mask": 27, "all/transparent_mask": 88, "all/paper_mask": 17, "all/mannequin": 40,
            "all/obfuscation": 23, "all/impersonation": 61, "all/cosmetic": 50, "all/funny_eye": 160,
            "all/paper_glasses": 127, "all/partial_paper": 86}


def _folder(root: Path, relative: str) -> Path:
    folder = root
    for part in relative.split("/"):
        folder = child_dir(folder, part, f"SiW-M {relative} videos")
    return folder


def scan(root: Path) -> list[tuple[str, str, str]]:
    """(live split or attack type, subject = video stem, path relative to root) of every video."""
    root = require_dir(root, "SiW-M root holding Live/ and one folder per attack type")
    videos = []
    for split in ("Train", "Test"):
        for path, m in media_files(_folder(root, f"Live/{split}"), NAME, f"SiW-M Live/{split}"):
            videos.append((split.lower(), m[1], path.relative_to(root).as_posix()))
    for kind, relative in TYPES.items():
        for path, m in media_files(_folder(root, relative), NAME, f"SiW-M {relative}"):
            videos.append((kind, m[1], path.relative_to(root).as_posix()))
    return videos


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0) -> list[Built]:
    if protocol not in (None, "", "loo"):
        raise InputError(f"SiW-M has one protocol, leave one attack type out ('loo'), got {protocol!r}")
    root = Path(root)
    videos = scan(root)
    stems: dict[str, str] = {}
    for _, stem, path in videos:
        if stems.setdefault(stem, path) != path:
            raise InputError(f"{root / path}: video name {stem} is also used by {root / stems[stem]}")
    everything = [item(p, kind in ("train", "test"), kind, stem, "train") for kind, stem, p in videos]
    warnings = compare_counts(counts(everything), EXPECTED, f"SiW-M {root}")
    out = []
    for k in fold_names(list(TYPES), fold, "SiW-M", "loo"):
        rows = []
        for kind, stem, path in videos:
            live = kind in ("train", "test")
            split = kind if live else ("test" if kind == k else "train")
            rows.append(item(path, live, kind, stem, split))
        rows = carve_dev(rows, dev_fraction, seed)
        notes = {"held_out": k, "fold_index": list(TYPES).index(k) + 1,
                 "dev": f"{dev_fraction:g} of the training videos (seed {seed}); SiW-M has no dev set and its "
                        "file names carry no subject id (each video is its own subject)"}
        out.append(Built(f"siwm_f{list(TYPES).index(k) + 1:02d}_{k}", "siwm", "loo", k, rows, root, notes, warnings))
    return out
