"""``report.html``: one self-contained page per training or test run (docs/REPORT.md).

The page is rendered with Jinja2 from ``DUM/templates/report.html.j2``; every picture is embedded as
a base64 ``data:`` URI and the page loads nothing from anywhere (no network, no external JavaScript),
so it can be mailed or archived alone. What it shows depends on what the run folders hold:

* a test run (``DUM/test.py``): config, the metrics table (CDCN-compatible and ISO/IEC 30107-3
  rows, APCER per attack type), ROC/DET/score histograms, the uncertainty analysis and the worst
  false accepts and false rejects with their panels;
* a depth-network training run (``DUM/train.py``, ``metrics.csv``): config and the loss, dev and
  sigma curves;
* a generator run (``train_generator.py``): its latest preview grids and identity diagnostics.

DUM/test.py and DUM/train.py write it into their run folder; ``run_demo.sh`` assembles the whole
demo into the test folder:

    python -m DUM.html_report CDCN_U_P1_test --train-dir CDCN_U_P1 --generator-dir model_oulu_p1
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import base64
import csv
import datetime
import io
import json
import logging
import math

from utils.io import InputError, atomic_write_text
from utils.run import run_stage

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SKIP_COLUMNS = {"epoch", "lr", "seconds", "best", "dev_videos", "dev_threshold", "dev_eer_threshold", "iteration",
                "it", "step"}


def data_uri(path) -> str:
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); left out of the report", path, exc)
        return None


def read_metrics_csv(path: Path) -> dict[str, list[float]]:
    """Numeric columns of a metrics.csv (empty cells -> NaN); {} when absent."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for name in (rows[0].keys() if rows else ()):
        values = []
        for row in rows:
            try:
                values.append(float(row.get(name) or "nan"))
            except ValueError:
                values = None
                break
        if values is not None:
            cols[name] = values
    return cols


def curve_group(name: str) -> str:
    if "sigma" in name:
        return "uncertainty (mean sigma)"
    if name.startswith("dev_"):
        return "dev metrics"
    if name.startswith("sim_") or "similarity" in name or "diversity" in name:
        return "identity diagnostics (cosine similarity)"
    if "kl" in name:
        return "KL terms"
    return "losses"


def plot_metrics_csv(cols: dict[str, list[float]], title: str) -> bytes | None:
    """PNG of every numeric column of a metrics.csv against epoch (or row), one panel per group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = cols.get("epoch") or list(range(1, len(next(iter(cols.values()), [])) + 1))
    groups: dict[str, list[str]] = {}
    for name, values in cols.items():
        if name not in SKIP_COLUMNS and any(math.isfinite(v) for v in values):
            groups.setdefault(curve_group(name), []).append(name)
    if not groups:
        return None
    fig = Figure(figsize=(4.2 * len(groups), 3.3), dpi=90)
    for k, (group, names) in enumerate(sorted(groups.items())):
        ax = fig.add_subplot(1, len(groups), k + 1)
        for name in names:
            pts = [(a, b) for a, b in zip(x, cols[name]) if math.isfinite(b)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) < 30 else "-", ms=3, lw=1.2, label=name)
        positive = [v for n in names for v in cols[n] if math.isfinite(v)]
        if positive and min(positive) > 0 and max(positive) / min(positive) > 100:
            ax.set_yscale("log")
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def config_items(cfg: dict | None) -> list[tuple[str, str]]:
    return [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in sorted((cfg or {}).items())]


def pct(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if not math.isfinite(value) else f"{100 * value:.2f} %"


def metrics_table(metrics: dict) -> dict:
    """Both reported rows with one APCER column per attack type."""
    rows = metrics.get("rows", {})
    types = list(metrics.get("attack_types", []))
    out = []
    for key, name in (("cdcn_compatible", "CDCN-compatible (original code)"), ("iso_30107_3", "ISO/IEC 30107-3")):
        r = rows.get(key)
        if not r:
            continue
        per = r.get("APCER_per_attack_type", {})
        out.append({"name": name, "threshold": f"{float(r.get('threshold', float('nan'))):.5g}",
                    "per_type": [pct(per.get(t)) for t in types],
                    "apcer": pct(r.get("APCER", r.get("APCER_pooled"))), "apcer_max": pct(r.get("APCER_max")),
                    "bpcer": pct(r.get("BPCER")), "acer": pct(r.get("ACER"))})
    iso = rows.get("iso_30107_3", {})
    extra = [(k, pct(v) if "AUC" not in k else f"{float(v):.4f}") for k, v in iso.items()
             if k.startswith(("EER", "AUC", "HTER", "BPCER@", "FTA")) and isinstance(v, (int, float))]
    return {"types": types, "rows": out, "extra": extra}


def test_section(run_dir: Path) -> dict | None:
    metrics = read_json(run_dir / "metrics.json")
    if metrics is None:
        return None
    plots = [(name, data_uri(run_dir / f)) for name, f in (("ROC", "roc.png"), ("DET", "det.png"),
                                                          ("score histograms", "score_hist.png"))
             if (run_dir / f).is_file()]
    unc = metrics.get("uncertainty")
    uncertainty = None
    if unc:
        rc = unc.get("risk_coverage", {})
        uncertainty = {"groups": [(g, v["frames"], f"{v['mean_sigma']:.4g}", f"{v['mean_abs_error']:.4g}")
                                  for g, v in unc.get("by_group", {}).items()],
                       "aurc": pct(rc.get("aurc")), "acer_full": pct(rc.get("acer_full")),
                       "spearman": f"{unc.get('sigma_error_spearman', float('nan')):.3f}",
                       "png": data_uri(run_dir / "uncertainty.png") if (run_dir / "uncertainty.png").is_file() else None}
    worst = []
    for entry in metrics.get("worst_videos", []):
        panels = [data_uri(p) for p in entry.get("panels", []) if Path(p).is_file()]
        worst.append({**entry, "score": f"{entry['score']:.5g}", "panel_uris": panels,
                      "truth": "bona fide" if entry["label"] == 1 else entry["attack_type"]})
    report_txt = (run_dir / "report.txt").read_text(encoding="utf-8") if (run_dir / "report.txt").is_file() else ""
    return {"table": metrics_table(metrics), "plots": plots, "uncertainty": uncertainty,
            "false_accepts": [w for w in worst if w["label"] != 1], "false_rejects": [w for w in worst if w["label"] == 1],
            "counts": {"dev": metrics.get("dev_counts"), "eval": metrics.get("eval_counts")},
            "inputs": metrics.get("inputs", {}), "report_txt": report_txt}


def train_section(run_dir: Path, title: str, csv_name: str = "metrics.csv") -> dict | None:
    cols = read_metrics_csv(run_dir / csv_name)
    cfg = read_json(run_dir / "config.json")
    if not cols and cfg is None:
        return None
    png = plot_metrics_csv(cols, title) if cols else None
    last = {k: v[-1] for k, v in cols.items() if v and math.isfinite(v[-1])}
    return {"dir": str(run_dir), "config": config_items(cfg), "curves": png_uri(png) if png else None,
            "epochs": len(cols.get("epoch", [])), "last": [(k, f"{v:.5g}") for k, v in last.items()], "grids": []}


def generator_section(run_dir: Path) -> dict | None:
    # the generator's per-epoch file (losses and identity diagnostics); metrics.csv is per iteration
    per_epoch = "metrics_epoch.csv" if (run_dir / "metrics_epoch.csv").is_file() else "metrics.csv"
    section = train_section(run_dir, "generator training", per_epoch)
    if section is None:
        return None
    previews = sorted((run_dir / "previews").glob("*.png")) if (run_dir / "previews").is_dir() else []
    latest = {}
    for p in previews:  # Epoch_<n>_<name>.png: keep each name's latest epoch
        latest[p.stem.split("_", 2)[-1]] = p
    section["grids"] = [(name, data_uri(p)) for name, p in sorted(latest.items())]
    return section


def render(context: dict) -> str:
    import jinja2  # the templating library (requirements.txt); only the report needs it

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2").render(**context)


def write_report(run_dir, train_dir=None, generator_dir=None, out=None, title: str | None = None) -> Path:
    """Build ``<run_dir>/report.html`` (or ``out``) from whatever the given run folders hold."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    test = test_section(run_dir)
    train = train_section(Path(train_dir), "depth network training") if train_dir else None
    if train is None and test is None:
        train = train_section(run_dir, "training")
    gen = generator_section(Path(generator_dir)) if generator_dir else None
    if gen is None and (run_dir / "previews").is_dir():
        gen, train = generator_section(run_dir), None
    cfg = read_json(run_dir / "config.json")
    context = {"title": title or f"DSDG run report: {run_dir.name}", "run_dir": str(run_dir.resolve()),
               "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "git_sha": (cfg or {}).get("git_sha", "unknown"), "config": config_items(cfg) if test else [],
               "test": test, "train": train, "generator": gen}
    path = Path(out) if out else run_dir / "report.html"
    atomic_write_text(path, render(context))
    log.info("report: %s", path)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write report.html for a run folder (self-contained: images embedded).")
    p.add_argument("run_dir", help="a DUM/test.py, DUM/train.py or train_generator.py output folder")
    p.add_argument("--train-dir", default=None, help="also show this DUM/train.py run (loss, dev and sigma curves)")
    p.add_argument("--generator-dir", default=None, help="also show this generator run (sample grids, diagnostics)")
    p.add_argument("--out", default=None, help="output file (default <run_dir>/report.html)")
    p.add_argument("--title", default=None, help="page title")
    return p


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    return run_stage(lambda a: write_report(a.run_dir, a.train_dir, a.generator_dir, a.out, a.title), args)


if __name__ == "__main__":
    main()
