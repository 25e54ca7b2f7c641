"""What the Depth Uncertainty Module's sigma says about a test run (DSDG, docs/REPORT.md).

sigma = exp(logvar / 2) is the network's per-pixel standard deviation of the depth map; a frame's
uncertainty is its mean over the map, a video's the mean over its frames. Three views:

* mean sigma of live, attack and generated frames (the paper's claim: generated faces get the
  larger uncertainty);
* risk-coverage: set aside the most uncertain videos and measure the ISO ACER of the rest at the
  fixed dev threshold, against the fraction kept. Its area (AURC, the mean ACER over every coverage
  k/n) is low when the uncertain videos are the ones the model gets wrong;
* sigma against the absolute depth error |mu - target| per frame (target: depth / 255 for bona
  fide, 0 for attacks, as in training), with their Spearman correlation.
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from data.protocols import GENERATED, is_generated_id, read_protocol
from DUM.dataset import DepthEvalDataset
from DUM.engine import FrameStat, evaluate
from DUM.scores import ScoreRow
from utils.io import atomic_write_bytes

GROUPS = ("live", "attack", "generated")


def frame_group(stat: FrameStat) -> str:
    if stat.attack_type == GENERATED or is_generated_id(stat.video_id):
        return "generated"
    return "live" if stat.label == 1 else "attack"


def sigma_by_group(stats: Sequence[FrameStat]) -> dict:
    """{group: {"frames": n, "mean_sigma": x, "mean_abs_error": y}} for the groups present."""
    out = {}
    for group in GROUPS:
        sel = [s for s in stats if frame_group(s) == group and math.isfinite(s.sigma)]
        if sel:
            out[group] = {"frames": len(sel), "mean_sigma": float(np.mean([s.sigma for s in sel])),
                          "mean_abs_error": float(np.mean([s.abs_error for s in sel]))}
    return out


def video_sigma(stats: Sequence[FrameStat]) -> dict[str, float]:
    per = defaultdict(list)
    for s in stats:
        if math.isfinite(s.sigma):
            per[s.video_id].append(s.sigma)
    return {v: float(np.mean(x)) for v, x in per.items()}


def iso_acer(rows: Sequence[ScoreRow], threshold: float) -> float:
    """ISO/IEC 30107-3 ACER at a fixed threshold (bona fide iff score >= threshold): (max APCER over
    attack types + BPCER) / 2. A class absent from ``rows`` contributes no error."""
    bona = [r.score for r in rows if r.label == 1]
    bpcer = float(np.mean([s < threshold for s in bona])) if bona else 0.0
    by_type = defaultdict(list)
    for r in rows:
        if r.label != 1:
            by_type[r.attack_type].append(r.score >= threshold)
    apcer = max((float(np.mean(v)) for v in by_type.values()), default=0.0)
    return (apcer + bpcer) / 2


def risk_coverage(rows: Sequence[ScoreRow], sigmas: dict[str, float], threshold: float) -> dict:
    """Videos sorted by sigma (most certain first); for k = 1..n the ACER of the k most certain.
    Returns coverage (k/n), acer, the area under the curve (mean ACER) and the ACER at full coverage."""
    scored = sorted((r for r in rows if math.isfinite(r.score) and r.video_id in sigmas),
                    key=lambda r: (sigmas[r.video_id], r.video_id))
    n = len(scored)
    if n == 0:
        return {"videos": 0, "coverage": [], "acer": [], "aurc": float("nan"), "acer_full": float("nan")}
    acer = [iso_acer(scored[:k], threshold) for k in range(1, n + 1)]
    return {"videos": n, "coverage": [k / n for k in range(1, n + 1)], "acer": acer,
            "aurc": float(np.mean(acer)), "acer_full": acer[-1], "threshold": float(threshold)}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation (average ranks for ties); NaN for fewer than 3 points or a constant input."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return float("nan")

    def ranks(a):
        order = np.argsort(a, kind="mergesort")
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=float)
        for value in np.unique(a):  # ties share their mean rank
            tie = a == value
            r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def generated_frame_stats(model, train_list, crop_root, image_size: int, map_size: int, device, videos: int = 20,
                          frame_batch: int = 64, workers: int = 0, seed: int = 0) -> list[FrameStat]:
    """Uncertainty of up to ``videos`` generated folders of a merged training list (``Train_g``),
    drawn with ``seed``: the generated side of the live / attack / generated comparison."""
    items = [it for it in read_protocol(train_list) if it.generated]
    if not items:
        return []
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(items), size=min(videos, len(items)), replace=False).tolist())
    dataset = DepthEvalDataset([items[k] for k in picks], crop_root, "train", image_size, map_size)
    result = evaluate(model, dataset, device, frame_batch, workers, desc="generated", frame_stats=True)
    return [FrameStat(s.video_id, s.frame, s.label, GENERATED, s.sigma, s.abs_error) for s in result.frame_stats]


def analyse(rows: Sequence[ScoreRow], stats: Sequence[FrameStat], threshold: float,
            generated_stats: Sequence[FrameStat] = ()) -> dict:
    """The numbers for metrics.json["uncertainty"] (curves included, for the plot and the report)."""
    every = list(stats) + list(generated_stats)
    finite = [s for s in stats if math.isfinite(s.sigma)]
    return {
        "sigma_definition": "sigma = exp(logvar / 2), mean over the depth map; video = mean over its frames",
        "by_group": sigma_by_group(every),
        "risk_coverage": risk_coverage(rows, video_sigma(stats), threshold),
        "sigma_error_spearman": spearman([s.sigma for s in finite], [s.abs_error for s in finite]),
        "frames": len(finite),
    }


def plot_uncertainty(result: dict, stats: Sequence[FrameStat], out_path, generated_stats: Sequence[FrameStat] = ()) -> Path:
    """uncertainty.png: sigma per group, the risk-coverage curve, sigma against |depth error|."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), dpi=90)
    every = [s for s in list(stats) + list(generated_stats) if math.isfinite(s.sigma)]
    colours = {"live": "tab:green", "attack": "tab:red", "generated": "tab:purple"}
    ax = fig.add_subplot(1, 3, 1)
    values = {g: [s.sigma for s in every if frame_group(s) == g] for g in GROUPS}
    values = {g: v for g, v in values.items() if v}
    if values:
        lo = min(min(v) for v in values.values())
        hi = max(max(v) for v in values.values())
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
        for g, v in values.items():
            ax.hist(v, bins=bins, histtype="step", lw=2, color=colours[g], density=True,
                    label=f"{g} (mean {np.mean(v):.3g}, {len(v)} frames)")
        ax.legend(fontsize=7)
    ax.set_xlabel("frame mean sigma")
    ax.set_title("uncertainty by kind of frame")
    ax = fig.add_subplot(1, 3, 2)
    rc = result["risk_coverage"]
    if rc["videos"]:
        ax.plot(rc["coverage"], [100 * a for a in rc["acer"]], "-", color="tab:blue", lw=2)
        ax.axhline(100 * rc["acer_full"], color="grey", ls=":", lw=1, label=f"all videos: {100 * rc['acer_full']:.1f} %")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("fraction of test videos kept (most certain first)")
    ax.set_ylabel("ISO ACER of the kept videos (%)")
    ax.set_xlim(0, 1.02)
    ax.set_title(f"risk-coverage (area {100 * rc['aurc']:.2f} %)" if rc["videos"] else "risk-coverage")
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(1, 3, 3)
    for g in ("live", "attack"):
        sel = [s for s in stats if frame_group(s) == g and math.isfinite(s.sigma)]
        if sel:
            ax.scatter([s.sigma for s in sel], [s.abs_error for s in sel], s=8, alpha=0.6, color=colours[g], label=g)
    ax.set_xlabel("frame mean sigma")
    ax.set_ylabel("mean |mu - target|")
    ax.set_title(f"sigma vs depth error (Spearman {result['sigma_error_spearman']:.2f})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    atomic_write_bytes(out_path, buf.getvalue())
    return Path(out_path)
