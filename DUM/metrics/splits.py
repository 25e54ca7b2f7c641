"""Score rows grouped for the metrics: bona fide, per attack type and pooled attacks, NaN counted apart."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from DUM.scores import DEFAULT_ATTACK_TYPE, ScoreRow


class Split(NamedTuple):
    bona_fide: np.ndarray                 # sorted scores, NaN removed
    attacks: dict[str, np.ndarray]        # attack type -> sorted scores, NaN removed
    pooled: np.ndarray                    # all attack scores, sorted
    counts: dict


def split_rows(rows: Sequence[ScoreRow], name: str) -> Split:
    """Group rows into sorted bona fide / per-attack-type / pooled attack scores (NaN left out) and
    count them; ``name`` labels the ValueError raised when either class has no finite score."""
    labels = np.array([int(r.label) for r in rows], dtype=np.int64)
    scores = np.array([float(r.score) for r in rows], dtype=np.float64)
    types = np.array([r.attack_type or DEFAULT_ATTACK_TYPE for r in rows], dtype=object)
    nan = np.isnan(scores)
    live, att = labels == 1, labels != 1
    bona_fide = np.sort(scores[live & ~nan])
    attacks = {str(t): np.sort(scores[att & ~nan & (types == t)]) for t in sorted(set(types[att]))}
    attacks = {t: v for t, v in attacks.items() if v.size}
    pooled = np.sort(scores[att & ~nan])
    if not bona_fide.size or not pooled.size:
        raise ValueError(f"{name} scores need at least one bona fide and one attack with a finite score "
                         f"(got {bona_fide.size} bona fide, {pooled.size} attacks)")
    n_nan = int(nan.sum())
    counts = {
        "n_bona_fide": int(bona_fide.size),
        "n_attack_per_attack_type": {t: int(v.size) for t, v in attacks.items()},
        "n_attack": int(pooled.size),
        "n_rows": int(len(rows)),
        "n_nan_bona_fide": int((nan & live).sum()),
        "n_nan_attack": int((nan & att).sum()),
        "fta": n_nan / len(rows),
    }
    return Split(bona_fide, attacks, pooled, counts)
