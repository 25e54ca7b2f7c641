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
        "n_nan_attack_per_attack_type": {str(t): int((nan & att & (types == t)).sum())
                                         for t in sorted(set(types[att & nan]))},
        "fta": n_nan / len(rows),
    }
    return Split(bona_fide, attacks, pooled, counts)


def fta_as_errors(split: Split) -> Split:
    """The same split with every failure to acquire (NaN row) put back as a wrong decision at any
    finite threshold: a bona fide row as score -inf (always rejected), an attack as +inf (always
    accepted). Error counts at a threshold then include them, and so do the denominators; an
    attack type whose rows all failed appears with APCER 1."""
    c = split.counts
    nan_types = c["n_nan_attack_per_attack_type"]
    empty = np.zeros(0)
    attacks = {t: np.r_[split.attacks.get(t, empty), np.full(nan_types.get(t, 0), np.inf)]
               for t in sorted(set(split.attacks) | set(nan_types))}
    bona_fide = np.r_[np.full(c["n_nan_bona_fide"], -np.inf), split.bona_fide]
    pooled = np.r_[split.pooled, np.full(c["n_nan_attack"], np.inf)]
    return Split(bona_fide, attacks, pooled, c)
