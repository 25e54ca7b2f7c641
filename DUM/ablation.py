"""The DUM ablation table: {CDCN, DepthNet, ResNet-18} x {without, with DUM} x {real, real + generated}.

    python -m DUM.ablation --runs-dir runs/ablation            # writes ablation.md and ablation.csv there

``scripts/ablation.sh`` trains and tests every cell under one set of settings and seed into
``<runs-dir>/<model>_<data>/`` (DUM/train.py's run folder) and ``<runs-dir>/<model>_<data>/test/``
(DUM/test.py's ``metrics.json``); this command gathers them into one table. Per cell: both metric
rows on the test set at the dev threshold (**CDCN-compatible**: the original ``performances()``,
APCER pooled over attack types, live iff score > threshold; **ISO/IEC 30107-3**: APCER = maximum
over attack types, bona fide iff score >= the dev EER threshold), the training time (the sum of
DUM/train.py's per-epoch training seconds, dev evaluation excluded) and the training images per
second. A cell that is missing is shown as not run. The settings every cell was trained with are
checked to be the same (except the network and the training list) and printed above the table.
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
from dataclasses import dataclass

from DUM.report import row_values
from networks.registry import get_spec
from utils.io import InputError, atomic_write_text
from utils.run import run_stage

log = logging.getLogger("DUM.ablation")

BACKBONES = ("cdcn", "depthnet", "resnet18")
DATA = {"real": "real", "realgen": "real + generated"}
# Settings that may differ between cells: what the ablation varies, and where each run lives.
VARIED = {"model", "train_list", "out_dir", "resume", "workers", "device"}
METRICS = ("APCER", "BPCER", "ACER")
ROW_NAMES = {"cdcn_compatible": "CDCN", "iso_30107_3": "ISO"}


def cells() -> list[tuple[str, bool, str]]:
    """(backbone, with DUM, data key) in table order."""
    return [(b, dum, d) for b in BACKBONES for dum in (False, True) for d in DATA]


def model_name(backbone: str, dum: bool) -> str:
    """Registry name of a cell's network: the DUM network or its baseline."""
    name = backbone + "_u" if dum else backbone
    return get_spec(name).name


def cell_dir(runs_dir: Path, backbone: str, dum: bool, data: str) -> Path:
    return Path(runs_dir) / f"{model_name(backbone, dum)}_{data}"


@dataclass
class Cell:
    backbone: str
    dum: bool
    data: str
    path: Path
    values: dict | None = None       # row -> metric -> fraction (None: not run)
    train_seconds: float = math.nan
    images: int = 0
    config: dict | None = None

    @property
    def images_per_second(self) -> float:
        return self.images / self.train_seconds if self.train_seconds > 0 else math.nan


def read_cell(runs_dir: Path, backbone: str, dum: bool, data: str) -> Cell:
    path = cell_dir(runs_dir, backbone, dum, data)
    cell = Cell(backbone, dum, data, path)
    metrics, history, config = path / "test" / "metrics.json", path / "metrics.csv", path / "config.json"
    if not (metrics.is_file() and history.is_file()):
        log.warning("%s: no finished run (needs metrics.csv and test/metrics.json): shown as not run", path)
        return cell
    cell.values = row_values(json.loads(metrics.read_text(encoding="utf-8")))
    with open(history, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cell.train_seconds = sum(float(r["seconds"]) for r in rows)
    cell.images = sum(int(float(r.get("images") or 0)) for r in rows)
    if config.is_file():
        cell.config = json.loads(config.read_text(encoding="utf-8"))
    return cell


def shared_settings(cells_: list[Cell]) -> dict:
    """The training settings of the finished cells; InputError when they differ beyond ``VARIED``."""
    configs = [(c.path, {k: v for k, v in c.config.items() if k not in VARIED}) for c in cells_ if c.config]
    if not configs:
        return {}
    first_path, first = configs[0]
    for path, cfg in configs[1:]:
        diff = sorted(k for k in set(first) | set(cfg) if first.get(k) != cfg.get(k))
        if diff:
            raise InputError(f"{path} was trained with other settings than {first_path}: "
                             + ", ".join(f"{k} {first.get(k)!r} vs {cfg.get(k)!r}" for k in diff))
    return first


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def table_rows(cells_: list[Cell]) -> list[dict]:
    out = []
    for c in cells_:
        row = {"backbone": get_spec(c.backbone).label, "DUM": "yes" if c.dum else "no", "data": DATA[c.data]}
        for key, short in ROW_NAMES.items():
            for m in METRICS:
                row[f"{short} {m}"] = _pct(c.values[key][m]) if c.values else "not run"
        row["train s"] = f"{c.train_seconds:.1f}" if c.values else ""
        row["train img/s"] = f"{c.images_per_second:.1f}" if c.values and c.images else ""
        out.append(row)
    return out


def markdown(rows: list[dict], settings: dict) -> str:
    keys = list(rows[0])
    shown = {k: settings[k] for k in ("protocol", "fold", "image_size", "width", "epochs", "batch_size", "ratio",
                                      "lr", "seed", "crop_root") if k in settings}
    lines = ["Test set, all error rates in %, thresholds chosen on dev. CDCN = CDCN-compatible row (APCER pooled, "
             "live iff score > dev threshold); ISO = ISO/IEC 30107-3 row (APCER = max over attack types, bona fide "
             "iff score >= dev EER threshold). train s: training seconds (dev evaluation excluded); train img/s: "
             "training images per second.", "",
             "Settings of every cell: " + ", ".join(f"{k} {v}" for k, v in shown.items()), "",
             "| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs-dir", required=True, help="folder scripts/ablation.sh trained and tested into")
    p.add_argument("--out", default=None, help="Markdown table (default <runs-dir>/ablation.md; CSV beside it)")
    return p


def run(args) -> dict:
    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise InputError(f"--runs-dir {runs_dir}: no such folder (run scripts/ablation.sh first)")
    found = [read_cell(runs_dir, *cell) for cell in cells()]
    if not any(c.values for c in found):
        raise InputError(f"{runs_dir}: no finished cell ({', '.join(c.path.name for c in found[:3])}, ...)")
    settings = shared_settings(found)
    rows = table_rows(found)
    text = markdown(rows, settings)
    out = Path(args.out) if args.out else runs_dir / "ablation.md"
    atomic_write_text(out, text)
    atomic_write_text(out.with_suffix(".csv"), to_csv(rows))
    log.info("ablation table (%s, %s)\n%s", out, out.with_suffix(".csv"), text)
    return {"out": str(out), "rows": rows, "settings": settings}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, Path(args.runs_dir), log_file="ablation.log")


if __name__ == "__main__":
    main()
