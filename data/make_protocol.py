"""Turn a dataset, as its owners distribute it, into the project's CSV protocol (one file per fold).

    python data/make_protocol.py --dataset siw --root /data/SiW_release --protocol 2 --out protocols/
    python data/make_protocol.py --dataset casia --root /data/CASIA_faceAntisp --out protocols/
    python data/make_protocol.py --dataset folders --root my_faces/ --out protocols/ --protocol mydata

Datasets: oulu (Protocols 1-4, folds 1-6 of 3 and 4), siw (Protocols 1-3; folds 1-4 of 2, 1-2 of 3),
siwm (leave one attack type out, folds 1-13 or the type's name), casia (the release's train/test),
replay (grandtest), folders (a generic live/attack folder tree). Without ``--fold`` every fold is
written. Layouts, protocol definitions and their sources: docs/DATASETS.md.

For each fold ``<out>/<name>.csv`` (path,label,attack_type,subject,split; paths relative to the
video root) and ``<out>/<name>.json`` (dataset, protocol, fold, video root, counts per split, label
and attack type, warnings, notes such as SiW Protocol 1's 60-frame training limit) are written, and
``<out>/index.json`` lists every protocol written into ``<out>``. Datasets without a dev set get a
seeded, subject-disjoint dev split carved from train (``--dev-fraction``, ``--seed``), so that no
threshold is ever chosen on test. A missing folder, an unexpected file name or a subject in two
splits stops with an error naming the path; counts that differ from the dataset's paper are warnings.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import os

from data.benchmarks import BUILDERS
from data.benchmarks.common import DEFAULT_DEV_FRACTION, Built, check_disjoint, check_splits, count_table, counts
from data.benchmarks.folders import DEFAULT_SUBJECT_PATTERN, DEFAULT_TEST_FRACTION
from data.protocols import read_protocol, write_protocol
from utils.io import atomic_write_json
from utils.run import run_stage, save_config

log = logging.getLogger("data.make_protocol")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(BUILDERS), help="which dataset layout --root holds")
    p.add_argument("--root", required=True, help="the dataset as distributed (see docs/DATASETS.md for each layout)")
    p.add_argument("--protocol", default=None,
                   help="oulu 1-4, siw 1-3, siwm loo, replay grandtest, casia all; folders: the output name "
                        "(default: the dataset's first protocol)")
    p.add_argument("--fold", default=None, help="one fold (number, or the held-out type for siwm); default all")
    p.add_argument("--out", required=True, help="folder for <name>.csv, <name>.json and index.json")
    p.add_argument("--dev-fraction", type=float, default=DEFAULT_DEV_FRACTION,
                   help="share of training subjects carved out as dev where the dataset has no dev set")
    p.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION,
                   help="folders without split folders: share of subjects for test")
    p.add_argument("--subject-pattern", default=DEFAULT_SUBJECT_PATTERN,
                   help="folders: regular expression whose first group is the subject in an item's name")
    p.add_argument("--seed", type=int, default=0, help="seed of the dev (and folders' test) subject draw")
    return p


def write_links(built: Built, out: Path) -> Path:
    """Links named by ``built.links`` in ``<out>/<name>_videos/`` (replaced if they point elsewhere)."""
    folder = out / f"{built.name}_videos"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in sorted(built.links.items()):
        link = folder / name
        target = Path(os.path.abspath(target))
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return folder


def write_built(built: Built, out: Path, args) -> dict:
    """Check one fold (split disjointness, both classes per split), write its CSV and JSON, log counts."""
    source = f"{args.dataset} {built.name}"
    check_disjoint(built.items, source)
    check_splits(built.items, source)
    video_root = write_links(built, out) if built.links else built.video_root
    csv_path = write_protocol(out / f"{built.name}.csv", built.items, fmt="csv")
    read_protocol(csv_path)  # what every stage will read: fail here, not three stages later
    meta = {
        "name": built.name, "dataset": built.dataset, "protocol": built.protocol, "fold": built.fold,
        "csv": csv_path.name, "video_root": str(Path(os.path.abspath(video_root))),
        "dataset_root": str(Path(os.path.abspath(built.video_root))), "counts": counts(built.items),
        "warnings": built.warnings, "notes": built.notes, "seed": args.seed, "dev_fraction": args.dev_fraction,
    }
    atomic_write_json(out / f"{built.name}.json", meta)
    log.info("%s: %s (video root %s)\n%s", source, csv_path, meta["video_root"], count_table(built.items))
    return meta


def update_index(out: Path, metas: list[dict]) -> Path:
    path = out / "index.json"
    index = json.loads(path.read_text()) if path.is_file() else {}
    for meta in metas:
        index[meta["name"]] = {k: meta[k] for k in ("csv", "dataset", "protocol", "fold", "video_root")}
        index[meta["name"]]["fold_number"] = meta["notes"].get("fold_index", meta["fold"])
    atomic_write_json(path, dict(sorted(index.items())))
    return path


def run(args) -> list[dict]:
    out = Path(args.out)
    save_config(args, out, filename=f"config_{args.dataset}.json")
    kwargs = dict(dev_fraction=args.dev_fraction, seed=args.seed)
    if args.dataset == "folders":
        kwargs.update(test_fraction=args.test_fraction, subject_pattern=args.subject_pattern)
    builds = BUILDERS[args.dataset](args.root, args.protocol, args.fold, **kwargs)
    metas = [write_built(built, out, args) for built in builds]
    update_index(out, metas)
    warned = sum(len(m["warnings"]) for m in metas)
    log.info("wrote %d protocol file(s) to %s%s", len(metas), out,
             f"; {warned} count warning(s): compare with docs/DATASETS.md" if warned else "")
    return metas


def main(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, Path(args.out), log_file=f"log_{args.dataset}.txt")


if __name__ == "__main__":
    main()
