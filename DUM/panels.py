"""One picture per scored face: what the depth network saw and what it answered (docs/REPORT.md).

A panel shows, left to right: the face crop; its depth label (DUM/test.py; none in predict.py,
which has no label); mu, the predicted depth on the labels' scale (0 = flat, 1 = the label's
nearest point, depth/255); sigma = exp(logvar / 2), the Depth Uncertainty Module's per-pixel
standard deviation, on a fixed scale [0, ``sigma_max``] with its colour bar, so panels of one run
(and of runs with the same ``sigma_max``) compare directly; and a title with the score, the
threshold and the decision. Maps are shown at their own resolution (no smoothing).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch

from DUM.dataset import normalize_image
from DUM.engine import depth_outputs
from utils.io import atomic_write_bytes

SIGMA_MAX = 1.0  # default top of the sigma colour scale: the KL term pulls sigma towards 1


def render_panel(crop_rgb: np.ndarray, mu: np.ndarray, logvar: np.ndarray | None, label: np.ndarray | None = None,
                 title: str = "", sigma_max: float = SIGMA_MAX) -> bytes:
    """PNG bytes of one panel. ``crop_rgb`` [S,S,3] uint8; ``mu``, ``logvar``, ``label`` [M,M]
    (label in 0..1, i.e. depth/255; None = no label, e.g. prediction)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    maps = [("face crop", crop_rgb, None)]
    if label is not None:
        maps.append(("depth label", np.asarray(label, np.float32), "gray"))
    maps.append(("mu (predicted depth)", np.asarray(mu, np.float32), "gray"))
    sigma = None if logvar is None else np.exp(np.asarray(logvar, np.float32) / 2)
    if sigma is not None:
        maps.append(("sigma = exp(logvar/2)", sigma, "magma"))
    fig = Figure(figsize=(2.1 * len(maps) + 0.5, 2.55), dpi=80)
    axes = fig.subplots(1, len(maps))
    for ax, (name, image, cmap) in zip(np.atleast_1d(axes), maps):
        if cmap is None:
            ax.imshow(image)
        elif cmap == "gray":
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            shown = ax.imshow(image, cmap=cmap, vmin=0.0, vmax=sigma_max, interpolation="nearest")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            name += f"\nmean {float(image.mean()):.3g}"
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def write_panel(path, crop_rgb, mu, logvar, label=None, title: str = "", sigma_max: float = SIGMA_MAX) -> Path:
    atomic_write_bytes(path, render_panel(crop_rgb, mu, logvar, label, title, sigma_max))
    return Path(path)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_.") or "item"


@torch.no_grad()
def video_panels(model, video: dict, device: torch.device, out_dir, score: float, threshold: float,
                 max_frames: int = 3, sigma_max: float = SIGMA_MAX, note: str = "") -> list[Path]:
    """Panels of up to ``max_frames`` frames (evenly spaced) of one DepthEvalDataset item."""
    images, depth, frames, item = video["images"], video["depth"], video["frames"], video["item"]
    if not len(frames):
        return []
    picks = sorted(set(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int).tolist()))
    x = normalize_image(images[picks].to(device))
    _, mu, logvar = depth_outputs(model(x))
    mu = mu.float().cpu().numpy()
    logvar = None if logvar is None else logvar.float().cpu().numpy()
    decision = "bona fide" if score >= threshold else "attack"
    truth = "bona fide" if int(item.label) == 1 else (item.attack_type or "attack")
    paths = []
    for j, k in enumerate(picks):
        frame_depth = depth[k].numpy() / 255.0
        title = (f"{item.video_id} frame {frames[k]} ({truth}) | video score {score:.4g} vs t {threshold:.4g}"
                 f" -> {decision}{note}")
        stem = Path(frames[k]).stem  # frames are named <video>_<n>_scene.jpg: the stem already names the video
        path = Path(out_dir) / f"{safe_name(stem if stem.startswith(item.video_id) else f'{item.video_id}_{stem}')}.png"
        crop = images[k].permute(1, 2, 0).numpy()
        paths.append(write_panel(path, crop, mu[j], None if logvar is None else logvar[j], frame_depth, title,
                                 sigma_max))
    return paths


def worst_videos(rows, threshold: float, per_class: int) -> list[tuple[object, str]]:
    """The ``per_class`` attacks with the highest scores and bona fide videos with the lowest (the
    worst false accepts and false rejects first; when there are fewer errors, the nearest misses),
    as (row, tag) with tag 'false accept', 'false reject' or 'correct'."""
    import math

    scored = [r for r in rows if math.isfinite(r.score)]
    attacks = sorted((r for r in scored if r.label != 1), key=lambda r: (-r.score, r.video_id))[:per_class]
    bona = sorted((r for r in scored if r.label == 1), key=lambda r: (r.score, r.video_id))[:per_class]
    out = [(r, "false accept" if r.score >= threshold else "correct") for r in attacks]
    out += [(r, "false reject" if r.score < threshold else "correct") for r in bona]
    return out


def write_worst_panels(model, dataset, rows, threshold: float, out_dir, device, per_class: int = 3,
                       max_frames: int = 3, sigma_max: float = SIGMA_MAX) -> list[dict]:
    """Panels of the worst videos of ``rows`` (see worst_videos) under ``out_dir``; returns one entry
    per video: video_id, label, attack_type, score, tag, panels (paths)."""
    index = {item.video_id: k for k, item in enumerate(dataset.items)}
    model.eval()
    entries = []
    for row, tag in worst_videos(rows, threshold, per_class):
        if row.video_id not in index:
            continue
        video = dataset[index[row.video_id]]
        paths = video_panels(model, video, device, out_dir, row.score, threshold, max_frames, sigma_max,
                             f" ({tag})")
        entries.append({"video_id": row.video_id, "label": int(row.label), "attack_type": row.attack_type,
                        "score": float(row.score), "tag": tag, "panels": [str(p) for p in paths]})
    return entries
