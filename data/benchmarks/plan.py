"""What ``scripts/run_benchmark.sh`` asks of the protocols ``data/make_protocol.py`` wrote, so the
shell script stays a list of stage calls:

    python -m data.benchmarks.plan folds --out DIR --dataset siw --protocol 2 [--fold K]   # names, one a line
    python -m data.benchmarks.plan get DIR/siw_p1.json notes.train_max_frames --default 0
    python -m data.benchmarks.plan subset DIR/siw_p1.csv --splits train --out train.csv  # rows of some splits
    python -m data.benchmarks.plan attack-types DIR/siw_p2_f1.csv                        # in the train rows
    python -m data.benchmarks.plan mark RUN_DIR --meta DIR/siw_p2_f1.json [--target replay]  # benchmark.json
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import json

from data.protocols import filter_split, read_protocol, write_protocol
from utils.io import InputError, atomic_write_json


def fold_names(out: Path, dataset: str, protocol: str | None, fold: str | None) -> list[str]:
    """Protocol files in ``out/index.json`` of this dataset (and protocol, and fold), in index order."""
    index_path = Path(out) / "index.json"
    if not index_path.is_file():
        raise InputError(f"{index_path}: missing (run data/make_protocol.py --out {out} first)")
    index = json.loads(index_path.read_text())
    names = []
    for name, meta in index.items():
        if meta["dataset"] != dataset or (protocol and str(meta["protocol"]) != str(protocol)):
            continue
        if fold and str(fold) not in (str(meta["fold"]), str(meta.get("fold_number"))):
            continue
        names.append(name)
    if not names:
        raise InputError(f"{index_path}: no protocol of {dataset}" + (f" protocol {protocol}" if protocol else "")
                         + (f" fold {fold}" if fold else ""))
    return names


def get(meta_path: Path, key: str, default=None):
    """A dotted key of a JSON file (``notes.train_max_frames``); ``default`` when absent."""
    value = json.loads(Path(meta_path).read_text())
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is None:
                raise InputError(f"{meta_path}: no {key}")
            return default
        value = value[part]
    return value


def subset(csv_path: Path, splits: list[str], out: Path) -> Path:
    items = [it for it in read_protocol(csv_path) if it.split in splits]
    if not items:
        raise InputError(f"{csv_path}: no rows of split {', '.join(splits)}")
    return write_protocol(out, items, fmt="csv")


def attack_types(csv_path: Path) -> int:
    """Distinct attack types among the training rows (the generator's type classes)."""
    return len({it.attack_type for it in filter_split(read_protocol(csv_path), "train") if not it.is_live})


def mark(run_dir: Path, meta_path: Path, target: str | None) -> Path:
    """``benchmark.json`` in a test run folder: how DUM.report places it."""
    meta = json.loads(Path(meta_path).read_text())
    out = {"dataset": meta["dataset"], "protocol": meta["protocol"], "fold": meta["fold"], "protocol_file": meta["csv"]}
    if target:
        out["target"] = target
    path = Path(run_dir) / "benchmark.json"
    atomic_write_json(path, out)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m data.benchmarks.plan", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("folds", help="protocol names of a dataset/protocol/fold in OUT/index.json")
    f.add_argument("--out", required=True, help="folder make_protocol wrote")
    f.add_argument("--dataset", required=True, help="dataset name")
    f.add_argument("--protocol", default=None, help="protocol (default: any)")
    f.add_argument("--fold", default=None, help="fold (default: all)")
    g = sub.add_parser("get", help="print a dotted key of a JSON file")
    g.add_argument("json", help="JSON file")
    g.add_argument("key", help="dotted key")
    g.add_argument("--default", default=None, help="printed when the key is absent")
    s = sub.add_parser("subset", help="write the rows of some splits of a CSV protocol")
    s.add_argument("csv", help="CSV protocol")
    s.add_argument("--splits", nargs="+", required=True, help="splits to keep")
    s.add_argument("--out", required=True, help="CSV to write")
    a = sub.add_parser("attack-types", help="number of attack types in the train rows")
    a.add_argument("csv", help="CSV protocol")
    m = sub.add_parser("mark", help="write benchmark.json into a test run folder")
    m.add_argument("run_dir", help="DUM/test.py output folder")
    m.add_argument("--meta", required=True, help="the protocol's JSON from make_protocol")
    m.add_argument("--target", default=None, help="cross-dataset: the test dataset")
    args = p.parse_args(argv)
    try:
        if args.command == "folds":
            print("\n".join(fold_names(Path(args.out), args.dataset, args.protocol, args.fold)))
        elif args.command == "get":
            print(get(Path(args.json), args.key, args.default))
        elif args.command == "subset":
            print(subset(Path(args.csv), args.splits, Path(args.out)))
        elif args.command == "attack-types":
            print(attack_types(Path(args.csv)))
        else:
            print(mark(Path(args.run_dir), Path(args.meta), args.target))
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
