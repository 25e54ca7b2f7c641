"""Does a generated pair share an identity? Generator diagnostics for previews and generated.py.

DSDG's generator decodes one identity code into a live and a spoof face. Whether the two really
look like one person is measured with the frozen LightCNN (the identity network of the losses):
cosine similarity of the L2-normalised features of

* ``sim_gen_pair``: the live and the spoof image of each generated pair;
* ``sim_real_same``: a real spoof frame and a live frame of the same subject (the training pairs);
* ``sim_real_diff``: live frames of two different subjects;
* ``sim_gen_between``: the live images of two different generated pairs (low = diverse identities).

A generator that keeps identities within a pair puts ``sim_gen_pair`` near ``sim_real_same`` and
well above ``sim_real_diff``; one that collapses to one face has ``sim_gen_between`` near 1.

The labelled grid shows each pair as one row (live | spoof) with the spoof type the generator's
own type classifier assigns to the pair's spoof-pattern code (when its probability is at least
``min_prob``; "?" otherwise).
"""
from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from generation.sampling import pair_noise
from networks.light_cnn import identity_features
from networks.vae import decode_pairs
from utils.io import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

# generator type classes 0..3 = OULU-NPU file ids 2..5 (generation/dataset.py)
TYPE_NAMES = ("print 1", "print 2", "replay 1", "replay 2")
COLUMNS = ("sim_gen_pair", "sim_real_same", "sim_real_diff", "sim_gen_between")


def _mean_offdiag(sim: torch.Tensor, mask: torch.Tensor) -> float:
    values = sim[mask]
    return float(values.mean()) if values.numel() else float("nan")


@torch.no_grad()
def identity_similarity(identity_net, fake_live: torch.Tensor, fake_spoof: torch.Tensor,
                        real_live: torch.Tensor | None = None, real_spoof: torch.Tensor | None = None,
                        users: Sequence | None = None) -> dict:
    """The four mean cosine similarities of the module docstring. Images [n,3,S,S] in [0,1];
    ``real_spoof[i]`` and ``real_live[i]`` are one subject, ``users[i]`` its id. Missing inputs or
    too few subjects give NaN for the measures that need them."""
    identity_net.eval()
    device = next(identity_net.parameters()).device
    f_live = identity_features(identity_net, fake_live.float().to(device)).cpu()
    f_spoof = identity_features(identity_net, fake_spoof.float().to(device)).cpu()
    n = f_live.shape[0]
    out = {"sim_gen_pair": float((f_live * f_spoof).sum(1).mean()),
           "sim_gen_between": _mean_offdiag(f_live @ f_live.T, ~torch.eye(n, dtype=torch.bool)),
           "sim_real_same": float("nan"), "sim_real_diff": float("nan"), "pairs": n}
    if real_live is not None and real_spoof is not None and len(real_live):
        r_live = identity_features(identity_net, real_live.float().to(device)).cpu()
        r_spoof = identity_features(identity_net, real_spoof.float().to(device)).cpu()
        out["sim_real_same"] = float((r_live * r_spoof).sum(1).mean())
        if users is not None:
            u = np.asarray([str(x) for x in users])
            different = torch.from_numpy(u[:, None] != u[None, :])
            out["sim_real_diff"] = _mean_offdiag(r_live @ r_live.T, different)
    return out


@torch.no_grad()
def assign_types(type_classifier, noise_type: torch.Tensor, min_prob: float = 0.5) -> list[str]:
    """The spoof type the classifier gives each spoof-pattern code, or '?' below ``min_prob``."""
    prob = F.softmax(type_classifier(noise_type.float()), dim=1)
    best, index = prob.max(1)
    names = [TYPE_NAMES[i] if i < len(TYPE_NAMES) else f"type {i}" for i in index.tolist()]
    return [f"{name} ({p:.2f})" if p >= min_prob else "?" for name, p in zip(names, best.tolist())]


def labelled_pair_grid(fake_live: torch.Tensor, fake_spoof: torch.Tensor, types: Sequence[str] | None = None,
                       max_rows: int = 8) -> bytes:
    """PNG: one row per pair, live | spoof, the spoof side titled with its type."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = min(max_rows, fake_live.shape[0])
    fig = Figure(figsize=(3.4, 1.7 * rows + 0.3), dpi=80)
    axes = fig.subplots(rows, 2, squeeze=False)
    for i in range(rows):
        for j, (name, images) in enumerate((("live", fake_live), ("spoof", fake_spoof))):
            ax = axes[i, j]
            ax.imshow(images[i].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            label = name if j == 0 or not types else f"spoof: {types[i]}"
            ax.set_title(f"pair {i + 1} {label}" if j == 0 else label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def format_similarity(sims: dict) -> str:
    def f(v):
        return "n/a" if not math.isfinite(v) else f"{v:.3f}"

    return (f"identity cosine: generated pair {f(sims['sim_gen_pair'])} | real same subject "
            f"{f(sims['sim_real_same'])} | real different subjects {f(sims['sim_real_diff'])} | "
            f"between generated pairs {f(sims['sim_gen_between'])} (diversity: lower is more diverse)")


def preview_diagnostics(identity_net, type_classifier, noise_type, fake_live, fake_spoof, real_live=None,
                        real_spoof=None, users=None, grid_path=None, max_rows: int = 8) -> dict:
    """Similarities (logged) and, with ``grid_path``, the labelled pair grid; returns the similarities."""
    sims = identity_similarity(identity_net, fake_live, fake_spoof, real_live, real_spoof, users)
    log.info("%s", format_similarity(sims))
    if grid_path is not None:
        types = assign_types(type_classifier, noise_type[:max_rows].to(next(type_classifier.parameters()).device))
        atomic_write_bytes(grid_path, labelled_pair_grid(fake_live, fake_spoof, types, max_rows))
    return sims


def real_pairs(dataset, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``n`` training pairs of a GenDataset (spoof frame + live frame of its subject), spread over
    the list, and their subjects: the real side of the comparison."""
    picks = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int)
    items = [dataset[int(i)] for i in picks]
    return (torch.stack([it["live"] for it in items]), torch.stack([it["spoof"] for it in items]),
            [dataset.items[int(i)].user for i in picks])


__all__ = ["COLUMNS", "TYPE_NAMES", "assign_types", "format_similarity", "identity_similarity",
           "labelled_pair_grid", "preview_diagnostics", "real_pairs", "sampled_pair_diagnostics",
           "write_diagnostics_csv"]


def sampled_pair_diagnostics(vae, identity_net, n_pairs: int, seed: int, device, real=None, out_dir=None) -> dict:
    """The diagnostics of the pairs generated.py draws: pairs 0..n-1 at attempt 0 (the noise of
    generation.sampling.pair_noise, so the same faces the first folders hold). ``real`` = (live,
    spoof, users) from :func:`real_pairs`, or None. With ``out_dir``: ``metrics.csv`` (one row)
    and ``pairs_labelled.png``."""
    hdim = int(vae.hdim)
    noise = [pair_noise(seed, j, 0, hdim) for j in range(n_pairs)]
    noise_type = torch.stack([t for t, _ in noise]).to(device)
    noise_id = torch.stack([i for _, i in noise]).to(device)
    fake_spoof, fake_live = decode_pairs(vae.decoder, noise_type, noise_id)
    real_live, real_spoof, users = real if real is not None else (None, None, None)
    grid = Path(out_dir) / "pairs_labelled.png" if out_dir is not None else None
    sims = preview_diagnostics(identity_net, vae.type_classifier, noise_type, fake_live.cpu(), fake_spoof.cpu(),
                               real_live, real_spoof, users, grid)
    if out_dir is not None:
        write_diagnostics_csv(Path(out_dir) / "metrics.csv", [sims])
    return sims


def write_diagnostics_csv(path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["epoch", *COLUMNS, "pairs"], lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return Path(path)
