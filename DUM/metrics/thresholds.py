"""bob.measure / bob.pad.base threshold rules and curves, re-expressed from their documented behaviour.

Thresholds that bob picks from data are computed with integer counts (exact arithmetic) instead of
bob's running float sums; the README states that both agree on all reference experiments, and the
exact version cannot flip a tie on rounding noise. Rule everywhere: accepted (bona fide) iff
score >= threshold.
"""
from __future__ import annotations

import numpy as np


def farfrr(negatives: np.ndarray, positives: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) with bob's rule: accepted iff score >= threshold."""
    return (int(np.count_nonzero(negatives >= threshold)) / len(negatives),
            int(np.count_nonzero(positives < threshold)) / len(positives))


def _minimizing_threshold(negatives: np.ndarray, positives: np.ndarray, criterion: str) -> float:
    """bob.measure's data-driven threshold search, with integer counts.

    Candidates, in bob's order: the lowest score; after passing each distinct score u_k, the midpoint
    (u_k + u_{k+1}) / 2; above every score. While both classes still have scores left a candidate
    replaces the best on ``<=`` (ties go to the higher threshold); the candidate reached when one
    class runs out and the one above all scores replace it only on strict improvement.
    """
    neg, pos = np.sort(negatives), np.sort(positives)
    n_neg, n_pos = len(neg), len(pos)
    if not n_neg or not n_pos:
        raise ValueError("a threshold needs both attack and bona fide scores")
    values = np.unique(np.concatenate([neg, pos]))
    m = len(values)
    # counts after passing values[k-1] (index 0: before any): attacks above it, bona fide at/below it
    fa = np.concatenate([[n_neg], n_neg - np.searchsorted(neg, values, "right")]).astype(np.int64)
    fr = np.concatenate([[0], np.searchsorted(pos, values, "right")]).astype(np.int64)
    thr = np.empty(m + 1)
    thr[0] = values[0]
    thr[1:m] = (values[:-1] + values[1:]) / 2  # double arithmetic, as bob computes the midpoint
    thr[m] = values[-1]                        # both classes end on the same value: no midpoint
    # exact criteria, scaled by n_neg * n_pos (FAR = fa / n_neg, FRR = fr / n_pos)
    if criterion == "eer":
        crit = np.abs(fa * n_pos - fr * n_neg)
    elif criterion == "min_hter":
        crit = fa * n_pos + fr * n_neg
    else:
        raise ValueError(f"unknown criterion {criterion!r}")
    k_end = int(np.searchsorted(values, min(neg[-1], pos[-1]))) + 1  # one class is exhausted here
    loop = crit[:k_end]
    best_value = int(loop.min())
    best_thr = float(thr[int(np.flatnonzero(loop == best_value)[-1])])  # last of the ties: "<="
    if crit[k_end] < best_value:
        best_value, best_thr = int(crit[k_end]), float(thr[k_end])
    if k_end < m and n_pos * n_neg < best_value:  # above all scores: FAR 0, FRR 1, both criteria n_pos*n_neg
        best_thr = float(np.nextafter(values[-1], np.inf))
    return best_thr


def eer_threshold(negatives, positives) -> float:
    """bob.measure.eer_threshold: minimises |FAR - FRR|."""
    return _minimizing_threshold(np.asarray(negatives, float), np.asarray(positives, float), "eer")


def min_hter_threshold(negatives, positives) -> float:
    """bob.measure.min_hter_threshold: minimises (FAR + FRR) / 2."""
    return _minimizing_threshold(np.asarray(negatives, float), np.asarray(positives, float), "min_hter")


def _rates(values) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if np.any((values < 0.0) | (values > 1.0)) or np.any(np.isnan(values)):
        raise ValueError(f"rates {values.tolist()} must lie in [0, 1]")
    return values


def far_thresholds(negatives, far_values) -> np.ndarray:
    """bob.measure.far_threshold for each rate: the lowest attack score s with #(attack >= s)/N <= v,
    tied values taken whole; nextafter(max, +inf) if none qualifies; nextafter(min, -inf) if v >= 1-eps."""
    v = _rates(far_values)
    neg = np.sort(np.asarray(negatives, float))
    values = np.unique(neg)
    rate = (len(neg) - np.searchsorted(neg, values, "left")) / len(neg)  # non-increasing
    first_ok = np.searchsorted(-rate, -v, "left")                         # first index with rate <= v
    out = np.where(first_ok < len(values), values[np.minimum(first_ok, len(values) - 1)],
                   np.nextafter(neg[-1], np.inf))
    return np.where(v >= 1 - np.finfo(np.float64).eps, np.nextafter(neg[0], -np.inf), out)


def frr_thresholds(positives, frr_values) -> np.ndarray:
    """bob.measure.frr_threshold for each rate: the highest bona fide score s with
    (#(bona fide <= s) - 1)/N <= v (bob's -1, at the last occurrence of s); nextafter(min, +inf) if
    none qualifies; nextafter(max, +inf) if v >= 1-eps."""
    v = _rates(frr_values)
    pos = np.sort(np.asarray(positives, float))
    values = np.unique(pos)
    rate = (np.searchsorted(pos, values, "right") - 1) / len(pos)        # non-decreasing
    last_ok = np.searchsorted(rate, v, "right") - 1                       # last index with rate <= v
    out = np.where(last_ok >= 0, values[np.maximum(last_ok, 0)], np.nextafter(pos[0], np.inf))
    return np.where(v >= 1 - np.finfo(np.float64).eps, np.nextafter(pos[-1], np.inf), out)


def far_threshold(negatives, far_value: float) -> float:
    return float(far_thresholds(negatives, far_value)[0])


def frr_threshold(positives, frr_value: float) -> float:
    return float(frr_thresholds(positives, frr_value)[0])


def farfrr_many(negatives, positives, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """farfrr at many thresholds at once (same count / N divisions)."""
    neg, pos = np.sort(np.asarray(negatives, float)), np.sort(np.asarray(positives, float))
    t = np.asarray(thresholds, dtype=np.float64)
    return ((len(neg) - np.searchsorted(neg, t, "left")) / len(neg), np.searchsorted(pos, t, "left") / len(pos))


def _log_values(points: int, min_power: int) -> list[float]:
    # Python's float pow is libm's pow, as bob's numba code uses; numpy may use SIMD variants
    step = int(points / (-min_power))
    if step < 1 or min_power >= 0:
        raise ValueError(f"{points} points cannot span 10**{min_power}..1 (need at least {-min_power} per half)")
    return [10.0 ** (k / step) for k in range(1 - points, 1)]


def meaningful_thresholds(negatives, positives, n_points: int, min_far: int = -8) -> np.ndarray:
    """bob's ROC thresholds: n/2 frr_threshold and n - n/2 far_threshold values at log-spaced rates
    from 10**min_far to 1, sorted, duplicates kept."""
    half = n_points // 2
    t = np.concatenate([frr_thresholds(positives, _log_values(half, min_far)),
                        far_thresholds(negatives, _log_values(n_points - half, min_far))])
    return np.sort(t)


def roc(negatives, positives, n_points: int = 100, min_far: int = -8) -> dict:
    """bob.measure.roc / det points: FAR and FRR (and their normal deviates) at bob's thresholds."""
    t = meaningful_thresholds(negatives, positives, n_points, min_far)
    far, frr = farfrr_many(negatives, positives, t)
    return {"thresholds": t, "far": far, "frr": frr, "det_x": ppndf(far), "det_y": ppndf(frr)}


def ppndf(p) -> np.ndarray:
    """Normal deviate of a rate (NIST DETware ppndf, Beasley-Springer AS 111 coefficients), as bob.measure."""
    eps = np.finfo(np.float64).eps
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.42
    qc = q[central]
    r = qc * qc
    out[central] = (qc * (((-25.4410604963 * r + 41.3911977353) * r + -18.6150006252) * r + 2.5066282388)
                    / ((((3.1308290983 * r + -21.0622410182) * r + 23.0833674374) * r + -8.4735109309) * r + 1.0))
    qt, pt = q[~central], p[~central]
    r = np.sqrt(-np.log(np.where(qt > 0, 1.0 - pt, pt)))
    tail = ((((2.3212127685 * r + 4.8501412713) * r + -2.2979647913) * r + -2.7871893113)
            / ((1.6370678189 * r + 3.5438892476) * r + 1.0))
    out[~central] = np.where(qt < 0, -tail, tail)
    return out


def _trapz(y, x) -> float:
    trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")
    return float(trapezoid(y, x))


def auc_scores(negatives, positives) -> dict:
    """Exact AUC = P(bona fide > attack) + P(equal)/2 from integer Mann-Whitney counts, plus
    sklearn's float value and bob.measure.roc_auc_score (trapezoid over a 2000-point ROC, approximate)."""
    from sklearn.metrics import roc_auc_score

    neg, pos = np.sort(np.asarray(negatives, float)), np.sort(np.asarray(positives, float))
    below = np.searchsorted(neg, pos, "left")             # attacks strictly below each bona fide
    ties = np.searchsorted(neg, pos, "right") - below
    u2 = int(2 * below.sum() + ties.sum())                  # 2U, an integer
    labels = np.r_[np.zeros(len(neg), np.int64), np.ones(len(pos), np.int64)]
    bob_roc = roc(neg, pos, 2000, -8)
    return {
        "exact": u2 / (2 * len(neg) * len(pos)),
        "mann_whitney_2u": u2,
        "sklearn_roc_auc_score": float(roc_auc_score(labels, np.r_[neg, pos])),
        "bob_measure_roc_auc_score": -_trapz(1.0 - bob_roc["frr"], bob_roc["far"]),
    }
