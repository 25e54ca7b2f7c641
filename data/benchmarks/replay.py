"""Replay-Attack (Chingovska, Anjos and Marcel, BIOSIG 2012): the grandtest protocol.

Layout of the release (docs/DATASETS.md; names as bob.db.replay parses them)::

    ROOT/{train,devel,test}/real/client<NNN>_session<NN>_<device>_authenticate_<light>_<take>.mov
    ROOT/{train,devel,test}/attack/{fixed,hand}/attack_<print|mobile|highdef>_client<NNN>_session<NN>_
        <highdef|mobile>_<photo|video>_<controlled|adverse>.mov

``enroll/`` (enrolment videos for face verification) is not part of the anti-spoofing protocol and
is ignored. Grandtest uses every attack (print, mobile, highdef) with both supports (fixed, hand):
train 60 real + 300 attacks, devel 60 + 300, test 80 + 400, clients disjoint across the three sets.
The dataset's own devel set is the dev split.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.benchmarks.common import Built, child_dir, compare_counts, counts, item, media_files, require_dir
from utils.io import InputError

REAL = re.compile(r"^client(\d{3})_session\d{2}_[a-z]+_authenticate_(controlled|adverse)_\d+\.mov$", re.IGNORECASE)
ATTACK = re.compile(r"^attack_(print|mobile|highdef)_client(\d{3})_session\d{2}_(highdef|mobile)_(photo|video)_"
                    r"(controlled|adverse)\.mov$", re.IGNORECASE)
SPLITS = {"train": "train", "devel": "dev", "test": "test"}
SUPPORTS = ("fixed", "hand")
PROTOCOLS = ("grandtest",)
# bob.db.replay's tests of the grandtest protocol; clients 15 / 15 / 20 (50 in all).
EXPECTED = {"train/live": 60, "train/attack": 300, "dev/live": 60, "dev/attack": 300, "test/live": 80,
            "test/attack": 400, "train/subjects": 15, "dev/subjects": 15, "test/subjects": 20,
            "all/print": 200, "all/mobile": 400, "all/highdef": 400}


def scan(root: Path):
    root = require_dir(root, "Replay-Attack root holding train/, devel/ and test/")
    rows = []
    for folder, split in SPLITS.items():
        split_dir = child_dir(root, folder, f"Replay-Attack {folder} set")
        for path, m in media_files(child_dir(split_dir, "real", f"Replay-Attack {folder}/real videos"), REAL,
                                   f"Replay-Attack {folder}/real"):
            rows.append(item(path.relative_to(root).as_posix(), 1, "", f"client{m[1]}", split))
        attack_dir = child_dir(split_dir, "attack", f"Replay-Attack {folder}/attack videos")
        extra = sorted(p.name for p in attack_dir.iterdir() if not p.name.startswith(".")
                       and p.name.lower() not in SUPPORTS)
        if extra:
            raise InputError(f"{attack_dir / extra[0]}: unexpected entry (expected only {' and '.join(SUPPORTS)}/)")
        for support in SUPPORTS:
            for path, m in media_files(child_dir(attack_dir, support, f"Replay-Attack {folder}/attack/{support}"),
                                       ATTACK, f"Replay-Attack {folder}/attack/{support}"):
                rows.append(item(path.relative_to(root).as_posix(), 0, m[1].lower(), f"client{m[2]}", split))
    return rows


def build(root, protocol=None, fold=None, dev_fraction: float = 0.2, seed: int = 0) -> list[Built]:
    protocol = protocol or "grandtest"
    if protocol not in PROTOCOLS:
        raise InputError(f"Replay-Attack protocols: {', '.join(PROTOCOLS)}; got {protocol!r}")
    if fold is not None:
        raise InputError("Replay-Attack grandtest has no folds (drop --fold)")
    root = Path(root)
    rows = scan(root)
    warnings = compare_counts(counts(rows), EXPECTED, f"Replay-Attack {root}")
    notes = {"dev": "the dataset's devel set"}
    return [Built(f"replay_{protocol}", "replay", protocol, None, rows, root, notes, warnings)]
