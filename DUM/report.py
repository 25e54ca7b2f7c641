"""Gather finished test runs into the paper's result tables (Markdown and CSV).

    python -m DUM.report runs/siw_p2 runs/oulu CDCN_U_P1_test --out results.md   # also writes results.csv

Each RUN_DIR is searched for ``metrics.json`` files (written by ``DUM/test.py`` and by
``python -m DUM.metrics --out-dir``). A run is placed by, in this order: a ``benchmark.json``
(``{"dataset", "protocol", "fold"[, "target"]}``, written by ``scripts/run_benchmark.sh``) in its
folder or a parent inside RUN_DIR; an OULU-NPU protocol number in ``metrics.json``'s inputs; the
``<stem>.json`` that ``data/make_protocol.py`` writes beside the dev and test CSV protocols (a dev
list of one dataset and a test list of another is a cross-dataset run).

Tables, in the layout of the DSDG paper, all numbers in %: OULU-NPU Protocols 1-4 and SiW Protocols
1-3 (APCER, BPCER, ACER; mean ± std over folds), SiW-M per held-out attack type (APCER, BPCER, ACER,
EER) with mean ± std over types, cross-dataset HTER (threshold on the source dev set, HTER on the
target test set), and any other CSV protocol. Every table has both metric rows: **CDCN-compatible**
(the original ``performances()``: APCER pooled over attacks, live iff score > threshold) and
**ISO/IEC 30107-3** (APCER = maximum over attack types, bona fide iff score >= the dev EER threshold).
EER is the test set's equal error rate, a threshold-free summary as the SiW-M papers report it (the
same in both rows); every threshold that decides APCER/BPCER/ACER/HTER comes from dev.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import csv
import io
import json
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass

from data.benchmarks.siwm import TYPES as SIWM_TYPES  # the paper's column order (the builder defines it)
from utils.io import InputError, atomic_write_text
from utils.run import run_stage

log = logging.getLogger("DUM.report")

ROWS = {"cdcn_compatible": "CDCN-compatible", "iso_30107_3": "ISO/IEC 30107-3"}
NAMES = {"oulu": "OULU-NPU", "siw": "SiW", "siwm": "SiW-M", "casia": "CASIA-MFSD", "replay": "Replay-Attack"}
FOLDS = {("oulu", "3"): 6, ("oulu", "4"): 6, ("siw", "2"): 4, ("siw", "3"): 2, ("siwm", "loo"): 13}
INTRA_METRICS = ("APCER", "BPCER", "ACER")
INTRO = ("All numbers in %; every threshold is chosen on dev. **CDCN-compatible**: the original performances() "
         "(APCER pooled over attack types, live iff score > the dev threshold). **ISO/IEC 30107-3**: APCER = maximum "
         "over attack types, bona fide iff score >= the dev EER threshold. EER: the test set's equal error rate "
         "(threshold-free). mean ± std: sample standard deviation over folds (SiW-M: over held-out types).")
SIWM_METRICS = ("APCER", "BPCER", "ACER", "EER")


@dataclass
class Run:
    dataset: str          # oulu, siw, siwm, casia, replay, or a CSV protocol's name
    protocol: str
    fold: str | None
    target: str | None    # cross-dataset: the test dataset
    path: Path
    values: dict          # row -> metric -> fraction


def row_values(metrics: dict) -> dict:
    """{row: {APCER, BPCER, ACER, HTER, EER}} as fractions from one metrics.json."""
    rows = metrics["rows"]
    eer = metrics.get("eval_eer_own_threshold", {}).get("eer", math.nan)
    c, i = rows["cdcn_compatible"], rows["iso_30107_3"]
    return {"cdcn_compatible": {"APCER": c["APCER"], "BPCER": c["BPCER"], "ACER": c["ACER"],
                                "HTER": (c["APCER"] + c["BPCER"]) / 2, "EER": eer},
            "iso_30107_3": {"APCER": i["APCER_max"], "BPCER": i["BPCER"], "ACER": i["ACER"], "HTER": i["HTER"],
                            "EER": eer}}


def _protocol_meta(list_path) -> dict | None:
    """The make_protocol JSON beside a CSV protocol (``<stem>.json``), if there is one."""
    if not list_path:
        return None
    meta = Path(str(list_path)).with_suffix(".json")
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except ValueError:
            return None
        return data if isinstance(data, dict) and "dataset" in data else None
    return None


def _benchmark_json(folder: Path, top: Path) -> dict | None:
    for d in [folder, *folder.parents]:
        if (d / "benchmark.json").is_file():
            return json.loads((d / "benchmark.json").read_text())
        if d == top:
            break
    return None


def identify(path: Path, top: Path, metrics: dict) -> Run:
    """Which benchmark, protocol and fold a metrics.json belongs to (see the module docstring)."""
    values = row_values(metrics)
    inputs = metrics.get("inputs", {})
    bench = _benchmark_json(path.parent, top)
    if bench:
        fold = bench.get("fold")
        return Run(bench["dataset"], str(bench.get("protocol") or ""), None if fold in (None, "") else str(fold),
                   bench.get("target"), path, values)
    protocol = inputs.get("protocol")
    if isinstance(protocol, int) or (isinstance(protocol, str) and protocol.isdigit()):
        fold = inputs.get("fold")
        return Run("oulu", str(protocol), None if fold is None else str(fold), None, path, values)
    dev, test = _protocol_meta(inputs.get("dev")), _protocol_meta(inputs.get("eval"))
    if dev and test:
        target = test["dataset"] if test["dataset"] != dev["dataset"] else None
        if target:
            return Run(dev["dataset"], dev.get("protocol", ""), None, target, path, values)
        return Run(test["dataset"], str(test.get("protocol", "")), test.get("fold"), None, path, values)
    # anything else (e.g. python -m DUM.metrics on score files): the run folder names it, fold_<k> its fold
    folder = path.parent
    fold = re.fullmatch(r"fold_(\d+)", folder.name)
    name = (folder.parent if fold else folder).name or str(folder)
    return Run(name, "", fold[1] if fold else None, None, path, values)


def collect(run_dirs) -> list[Run]:
    runs, seen = [], {}
    for top in map(Path, run_dirs):
        if not top.exists():
            raise InputError(f"{top}: no such run folder")
        files = [top] if top.is_file() else sorted(top.rglob("metrics.json"))
        if not files:
            raise InputError(f"{top}: no metrics.json inside (run DUM/test.py first)")
        for path in files:
            if path.resolve() in {p.resolve() for p in seen.values()}:
                continue
            try:
                run = identify(path, top if top.is_dir() else path.parent, json.loads(path.read_text()))
            except (ValueError, KeyError) as exc:
                raise InputError(f"{path}: not a metrics.json of DUM/test.py or DUM.metrics ({exc})") from None
            key = (run.dataset, run.protocol, run.fold, run.target)
            if key in seen:
                raise InputError(f"{path} and {seen[key]} are both {describe(run)}: pass only one of them")
            seen[key] = path
            runs.append(run)
    return runs


def describe(run: Run) -> str:
    name = NAMES.get(run.dataset, run.dataset)
    if run.target:
        return f"cross-dataset {name} -> {NAMES.get(run.target, run.target)}"
    return f"{name} protocol {run.protocol}" + (f" fold {run.fold}" if run.fold else "")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1, as DUM.metrics over folds; NaN for one value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def tables(runs: list[Run]) -> tuple[str, list[dict]]:
    """(Markdown, CSV records) of every table that has runs."""
    md, records = ["# Results", "", INTRO], []

    def record(table, setting, column, row, metric, vals):
        mean, std = mean_std(vals)
        records.append({"table": table, "setting": setting, "column": column, "metric_row": ROWS[row],
                        "metric": metric, "mean": mean, "std": std, "n": len(vals)})
        return _cell(mean, std)

    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.dataset, run.target)].append(run)
    for dataset in ["oulu", "siw"] + sorted(d for d, t in groups if d not in ("oulu", "siw", "siwm") and not t):
        if (dataset, None) not in groups:
            continue
        name = NAMES.get(dataset, dataset)
        body = []
        by_protocol = defaultdict(list)
        for run in groups[(dataset, None)]:
            by_protocol[run.protocol].append(run)
        for protocol in sorted(by_protocol, key=lambda p: (len(p), p)):
            prs = by_protocol[protocol]
            want = FOLDS.get((dataset, protocol))
            folds = f"{len(prs)}" + (f" of {want}" if want else "")
            for row in ROWS:
                cells = [record(name, f"Protocol {protocol}", "", row, m, [r.values[row][m] for r in prs])
                         for m in INTRA_METRICS]
                body.append([protocol or "-", ROWS[row]] + cells + [folds])
        md += ["", f"## {name}", "", _md_table(["Protocol", "metric row"] + list(INTRA_METRICS) + ["folds"], body)]
    if ("siwm", None) in groups:
        md += ["", "## SiW-M, leave one attack type out", "", _siwm(groups[("siwm", None)], record)]
    cross = sorted((k for k in groups if k[1]), key=str)
    if cross:
        body = []
        for key in cross:
            source, target = NAMES.get(key[0], key[0]), NAMES.get(key[1], key[1])
            for row in ROWS:
                body.append([source, target, ROWS[row],
                             record("cross-dataset", f"{source} -> {target}", "", row, "HTER",
                                    [r.values[row]["HTER"] for r in groups[key]])])
        md += ["", "## Cross-dataset HTER (threshold on the source dev set)", "",
               _md_table(["Train", "Test", "metric row", "HTER"], body)]
    return "\n".join(md) + "\n", records


def _siwm(runs: list[Run], record) -> str:
    """Columns: the held-out types in the paper's order, then mean ± std over types."""
    by_type = {r.fold: r for r in runs}
    order = [t for t in SIWM_TYPES if t in by_type] + sorted(t for t in by_type if t not in SIWM_TYPES)
    body = []
    for row in ROWS:
        for metric in SIWM_METRICS:
            cells = [record("SiW-M", "leave one out", t, row, metric, [by_type[t].values[row][metric]]) for t in order]
            vals = [by_type[t].values[row][metric] for t in order]
            body.append([ROWS[row], metric] + cells + [record("SiW-M", "leave one out", "mean", row, metric, vals)])
    head = ["metric row", "metric"] + order + [f"mean ± std ({len(order)} of 13)"]
    return _md_table(head, body)


def to_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["table", "setting", "column", "metric_row", "metric", "mean", "std", "n"],
                            lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({**r, "mean": f"{100 * r['mean']:.4f}",
                         "std": "" if math.isnan(r["std"]) else f"{100 * r['std']:.4f}"})
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m DUM.report", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", help="test output folders (searched for metrics.json) or metrics.json files")
    p.add_argument("--out", default="results.md", help="Markdown file; the CSV goes beside it (.csv)")
    return p


def run(args) -> dict:
    runs = collect(args.run_dirs)
    for r in runs:
        log.info("%s: %s", describe(r), r.path)
    text, records = tables(runs)
    out = Path(args.out)
    atomic_write_text(out, text)
    atomic_write_text(out.with_suffix(".csv"), to_csv(records))
    sys.stdout.write(text)
    log.info("wrote %s and %s (%d runs)", out, out.with_suffix(".csv"), len(runs))
    return {"runs": len(runs), "markdown": str(out), "csv": str(out.with_suffix(".csv"))}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args)


if __name__ == "__main__":
    main()
