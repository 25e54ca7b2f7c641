"""ROC, DET and score-histogram PNGs for a dev/eval pair of score lists (Agg backend, no display).

Written by ``python -m DUM.metrics --out-dir`` and by DUM/test.py next to metrics.json; the numbers
come from the DUM.metrics package (which never imports this module), so the marked operating points match the report.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from DUM.metrics.evaluation import score_metrics
from DUM.metrics.splits import Split, split_rows
from DUM.metrics.thresholds import farfrr, ppndf
from DUM.scores import ScoreRow
from utils.io import atomic_write_bytes


def empirical_curve(negatives, positives) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FAR, FRR) at every distinct score and above all scores, bob's rule (>= accepted)."""
    neg, pos = np.sort(np.asarray(negatives, float)), np.sort(np.asarray(positives, float))
    t = np.unique(np.concatenate([neg, pos]))
    t = np.append(t, np.nextafter(t[-1], np.inf))
    far = (len(neg) - np.searchsorted(neg, t, "left")) / len(neg)
    frr = np.searchsorted(pos, t, "left") / len(pos)
    return t, far, frr


_DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9)


def plot_curves(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow], out_dir, prefix: str = "",
                result: dict | None = None) -> list[Path]:
    """Write ``{prefix}roc.png``, ``{prefix}det.png`` and ``{prefix}score_hist.png`` (Agg, no display):
    dev and eval pooled, eval per attack type, the dev EER and CDCN operating points marked."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if result is None:
        result = score_metrics(dev_rows, eval_rows)
    dev, ev = split_rows(dev_rows, "dev"), split_rows(eval_rows, "eval")
    t_iso = result["thresholds"]["eer"]["threshold"]
    t_cdcn = result["cdcn_compatible"]["returned"]["val_threshold"]
    curves = [("dev, attacks pooled", dev.pooled, dev.bona_fide, "-", 2.0),
              ("eval, attacks pooled", ev.pooled, ev.bona_fide, "-", 2.0)]
    if len(ev.attacks) > 1:
        curves += [(f"eval, {k}", v, ev.bona_fide, "--", 1.0) for k, v in ev.attacks.items()]
    op = farfrr(ev.pooled, ev.bona_fide, t_iso)
    figures = {"roc.png": _roc_figure(curves, op, t_iso), "det.png": _det_figure(curves, op),
               "score_hist.png": _hist_figure(dev, ev, t_iso, t_cdcn)}
    paths = []
    for name, fig in figures.items():
        path = out_dir / f"{prefix}{name}"
        _save_png(fig, path)
        paths.append(path)
    return paths


def _new_figure(size):
    # matplotlib is imported here, not at the top: only runs that write curves pay for its import
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def _save_png(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred with the figure, see _new_figure

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    atomic_write_bytes(path, buf.getvalue())


def _roc_figure(curves, op, t_iso: float):
    fig = _new_figure((6, 5))
    ax = fig.add_subplot()
    for label, neg, pos, style, width in curves:
        _, far, frr = empirical_curve(neg, pos)
        ax.plot(far, 1 - frr, style, lw=width, label=label)
    ax.plot([op[0]], [1 - op[1]], "ko", label=f"eval at dev EER threshold {t_iso:.4g}")
    ax.set_xlabel("APCER (attacks accepted, score >= t)")
    ax.set_ylabel("1 - BPCER (bona fide accepted)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC")
    return fig


def _det_figure(curves, op):
    fig = _new_figure((6, 5))
    ax = fig.add_subplot()
    for label, neg, pos, style, width in curves:
        _, far, frr = empirical_curve(neg, pos)
        ax.plot(ppndf(far), ppndf(frr), style, lw=width, label=label)
    ax.plot(ppndf([op[0]]), ppndf([op[1]]), "ko", label="eval at dev EER threshold")
    ticks = ppndf(_DET_TICKS)
    names = [f"{100 * v:g}" for v in _DET_TICKS]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    lim = (float(ppndf([0.0005])[0]), float(ppndf([0.95])[0]))
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, ":", color="grey", lw=0.8)
    ax.set_xlabel("APCER (%)")
    ax.set_ylabel("BPCER (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("DET")
    return fig


def _hist_figure(dev: Split, ev: Split, t_iso: float, t_cdcn: float):
    fig = _new_figure((10, 4))
    every = np.concatenate([dev.bona_fide, dev.pooled, ev.bona_fide, ev.pooled])
    lo, hi = float(every.min()), float(every.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
    for i, (name, split) in enumerate((("dev", dev), ("eval", ev))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.hist(split.bona_fide, bins=bins, histtype="step", lw=2, label="bona fide")
        for k, v in split.attacks.items():
            ax.hist(v, bins=bins, histtype="step", lw=1, label=k)
        ax.axvline(t_iso, color="k", ls="--", lw=1, label="ISO (dev EER) t")
        ax.axvline(t_cdcn, color="r", ls=":", lw=1, label="CDCN t")
        ax.set_title(f"{name} scores")
        ax.set_xlabel("score (higher = more bona fide)")
        ax.legend(fontsize=7)
    return fig
