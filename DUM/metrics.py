"""Presentation-attack-detection metrics from per-video scores, as a library and as a command.

Two rows are always reported side by side (ORIGINAL_SPEC 4 and 8, shared/reference/metrics/README.md):

1. **CDCN-compatible**: exactly what ``performances(val, test)`` of ZitongYu/CDCN
   ``CVPR2020_paper_codes/utils.py`` (the routine DSDG reports with) computes: threshold = the dev
   score at ``argmin |TPR + FPR - 1|`` over sklearn's ``roc_curve`` corner points, *bona fide iff
   score > t*, APCER pooled over all attacks. These numbers compare with the published tables.
2. **ISO/IEC 30107-3** with the rules of Idiap's bob.measure / bob.pad.base: thresholds chosen on
   dev only, *bona fide iff score >= t*, APCER per attack type and its maximum,
   ACER = (APCER_max + BPCER) / 2, BPCER at APCER 1/5/10 %, EER, HTER, AUC, FTA.

Score convention everywhere: higher = more bona fide; label 1 bona fide, 0 attack.

Command::

    python -m DUM.metrics --dev DEV.csv --eval EVAL.csv [--out-dir DIR]
    python -m DUM.metrics --format bob --dev dev-1.txt --eval test-1.txt
    python -m DUM.metrics --dev d1.csv d2.csv ... --eval e1.csv e2.csv ... --out-dir DIR   # folds

Thresholds that bob picks from data are computed with integer counts (exact arithmetic) instead of
bob's running float sums; the README states that both agree on all reference experiments, and the
exact version cannot flip a tie on rounding noise.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import math
from typing import NamedTuple, Sequence

import numpy as np

# read_scores/write_scores/ScoreRow stay reachable as DUM.metrics.* for callers and tests of the command
from DUM.scores import DEFAULT_ATTACK_TYPE, FORMATS, ScoreRow, read_scores, write_scores  # noqa: F401
from utils.io import InputError, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

DEFAULT_TARGETS = (0.01, 0.05, 0.1)  # APCER / FAR / FRR operating points (ISO BPCER100/20/10)
EOWN_NOTE = ("eval EER at a threshold chosen on eval itself: for completeness only, optimistically "
             "biased, NOT a reportable number")


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------

class _Split(NamedTuple):
    bona_fide: np.ndarray                 # sorted scores, NaN removed
    attacks: dict[str, np.ndarray]        # attack type -> sorted scores, NaN removed
    pooled: np.ndarray                    # all attack scores, sorted
    counts: dict


def split_rows(rows: Sequence[ScoreRow], name: str) -> _Split:
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
    return _Split(bona_fide, attacks, pooled, counts)


# --------------------------------------------------------------------------------------------------
# bob.measure / bob.pad.base threshold rules (re-expressed from their documented behaviour)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# ISO/IEC 30107-3 row (bob rules)
# --------------------------------------------------------------------------------------------------

def _block(split: _Split, t: float) -> dict:
    fa = {k: int(np.count_nonzero(v >= t)) for k, v in split.attacks.items()}
    apcer = {k: fa[k] / len(split.attacks[k]) for k in split.attacks}
    fa_pooled = int(np.count_nonzero(split.pooled >= t))
    fr = int(np.count_nonzero(split.bona_fide < t))
    apcer_max, apcer_pooled, bpcer = max(apcer.values()), fa_pooled / len(split.pooled), fr / len(split.bona_fide)
    return {
        "apcer_per_attack_type": apcer,
        "apcer_max": apcer_max,
        "apcer_pooled": apcer_pooled,
        "bpcer": bpcer,
        "acer": (apcer_max + bpcer) / 2,
        "hter": (apcer_pooled + bpcer) / 2,
        "counts": {
            "false_accepts_per_attack_type": fa,
            "false_accepts_pooled": fa_pooled,
            "false_rejects": fr,
            "n_bona_fide": len(split.bona_fide),
            "n_attack_per_attack_type": {k: len(v) for k, v in split.attacks.items()},
        },
    }


def _pct(v: float) -> str:
    return f"{v * 100:g}%"


def _thresholds(dev: _Split, targets: Sequence[float]) -> dict:
    crit = {
        "eer": ("bob.measure.eer_threshold(dev attacks pooled, dev bona fide)",
                eer_threshold(dev.pooled, dev.bona_fide)),
        "min_hter": ("bob.measure.min_hter_threshold(dev attacks pooled, dev bona fide)",
                     min_hter_threshold(dev.pooled, dev.bona_fide)),
    }
    out = {name: {"criterion": c, "threshold": t} for name, (c, t) in crit.items()}
    for v in targets:
        out[f"far_pooled_{_pct(v)}"] = {
            "criterion": f"bob.measure.far_threshold(dev attacks pooled, dev bona fide, far_value={v})",
            "target": v, "threshold": far_threshold(dev.pooled, v)}
        per_type = {k: far_threshold(s, v) for k, s in dev.attacks.items()}
        out[f"apcer_max_{_pct(v)}"] = {
            "criterion": (f"max over attack types of bob.measure.far_threshold(dev attacks of that type, "
                          f"dev bona fide, {v}) (bob.pad.base calc_threshold('bpcer{round(1 / v)}'))"),
            "target": v, "threshold": max(per_type.values()), "per_attack_type_threshold": per_type}
        out[f"frr_{_pct(v)}"] = {
            "criterion": f"bob.measure.frr_threshold(dev attacks pooled, dev bona fide, frr_value={v})",
            "target": v, "threshold": frr_threshold(dev.bona_fide, v)}
    return out


def _fta_adjusted(split: _Split, block: dict) -> dict:
    fta = split.counts["fta"]
    fmr, fnmr = block["apcer_pooled"], block["bpcer"]
    return {"fta": fta, "fmr": fmr, "fnmr": fnmr,
            "far_with_fta": fmr * (1 - fta), "frr_with_fta": fta + fnmr * (1 - fta)}


# --------------------------------------------------------------------------------------------------
# CDCN-compatible row (the original performances())
# --------------------------------------------------------------------------------------------------

class CdcnThreshold(NamedTuple):
    threshold: float   # a score of the set (or +inf when the first ROC point wins)
    err: float         # fpr at that point ("val_err"; sklearn's >= rule)
    index: int
    fpr: float
    tpr: float
    n_points: int


def _need_both_classes(labels: np.ndarray, scores: np.ndarray) -> None:
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-D and of equal length")
    if np.isnan(scores).any():
        raise ValueError("NaN scores: drop them first (the original code cannot read them)")
    if not (labels == 1).any() or not (labels != 1).any():
        raise ValueError("the CDCN metrics need both bona fide (label 1) and attack scores")


def cdcn_threshold(labels, scores) -> CdcnThreshold:
    """The original get_err_threhold(): sklearn roc_curve (drop_intermediate=True, the default), first
    index of min |TPR + FPR - 1|. Usable per epoch on dev scores for model selection."""
    from sklearn.metrics import roc_curve

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    _need_both_classes(labels, scores)
    fpr, tpr, thr = roc_curve(labels, scores, pos_label=1)
    i = int(np.argmin(np.abs(tpr + fpr - 1.0)))
    return CdcnThreshold(float(thr[i]), float(fpr[i]), i, float(fpr[i]), float(tpr[i]), int(len(thr)))


def cdcn_errors(labels, scores, threshold: float, attack_types=None) -> dict:
    """Error rates of the original code at ``threshold``: bona fide iff score > threshold, APCER pooled.
    type1 = bona fide with score <= t; type2 = label-0 attacks with score > t. With ``attack_types``
    also the per-type APCER (same rule) and its maximum, an extension the original lacks."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    _need_both_classes(labels, scores)
    live = labels == 1
    type1 = int(np.count_nonzero(live & (scores <= threshold)))
    type2 = int(np.count_nonzero((labels == 0) & (scores > threshold)))
    count, num_real = len(labels), int(live.sum())
    num_fake = count - num_real
    apcer, bpcer = type2 / num_fake, type1 / num_real
    out = {"ACC": 1 - (type1 + type2) / count, "APCER": apcer, "BPCER": bpcer, "ACER": (apcer + bpcer) / 2.0,
           "type1": type1, "type2": type2}
    if attack_types is not None:
        types = np.asarray(attack_types, dtype=object)
        per = {}
        for t in sorted(set(types[~live])):
            sel = ~live & (types == t)
            per[str(t)] = int(np.count_nonzero(sel & (scores > threshold))) / int(sel.sum())
        out["APCER_per_attack_type"] = per
        out["APCER_max"] = max(per.values())
    return out


def _finite_arrays(rows: Sequence[ScoreRow]):
    keep = [r for r in rows if not math.isnan(r.score)]
    return (np.array([r.label for r in keep], dtype=np.int64), np.array([r.score for r in keep], dtype=np.float64),
            np.array([r.attack_type or DEFAULT_ATTACK_TYPE for r in keep], dtype=object))


def cdcn_compatible(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow]) -> dict:
    """``performances(val, test)``: the nine returned values, the intermediate ones, and the per-attack
    extension. NaN rows are dropped (the original cannot read them; sklearn rejects them)."""
    dl, ds, _ = _finite_arrays(dev_rows)
    el, es, et = _finite_arrays(eval_rows)
    val = cdcn_threshold(dl, ds)
    tst = cdcn_threshold(el, es)
    v = cdcn_errors(dl, ds, val.threshold)
    t = cdcn_errors(el, es, val.threshold, attack_types=et)
    tt = cdcn_errors(el, es, tst.threshold)
    return {
        "routine": "CDCN CVPR2020_paper_codes/utils.py performances(dev, eval)",
        "decision_rule": "bona fide iff score > threshold; APCER pooled over all attacks",
        "returned": {
            "val_threshold": val.threshold, "best_test_threshold": tst.threshold,
            "val_ACC": v["ACC"], "val_ACER": v["ACER"],
            "test_ACC": t["ACC"], "test_APCER": t["APCER"], "test_BPCER": t["BPCER"], "test_ACER": t["ACER"],
            "test_threshold_ACER": tt["ACER"],
        },
        "intermediate": {
            "val_err": val.err, "val_roc_index": val.index, "val_roc_fpr": val.fpr, "val_roc_tpr": val.tpr,
            "val_roc_n_points": val.n_points, "val_APCER": v["APCER"], "val_BPCER": v["BPCER"],
            "val_counts": {"type1": v["type1"], "type2": v["type2"]},
            "test_counts": {"type1": t["type1"], "type2": t["type2"]},
            "test_err_at_test_threshold": tst.err, "test_roc_index": tst.index,
            "test_threshold_APCER": tt["APCER"], "test_threshold_BPCER": tt["BPCER"],
            "test_threshold_counts": {"type1": tt["type1"], "type2": tt["type2"]},
        },
        "extension_test_APCER_per_attack_type": t["APCER_per_attack_type"],
        "extension_test_APCER_max": t["APCER_max"],
        "input_note": "NaN rows dropped; only label-0 rows count as attack errors, as in the original",
        "note": ("test_threshold_ACER uses a threshold chosen on eval itself (returned by the original, "
                 "not printed): optimistically biased, not a reportable number"),
    }


# --------------------------------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------------------------------

def evaluate(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow], *, n_points: int = 100,
             min_far: int = -8, targets: Sequence[float] = DEFAULT_TARGETS) -> dict:
    """Both rows, every threshold (all chosen on dev), curves and counts; a JSON-serialisable dict."""
    dev, ev = split_rows(dev_rows, "dev"), split_rows(eval_rows, "eval")
    if set(ev.attacks) - set(dev.attacks):
        logger.warning("attack types %s occur in eval but not in dev: the per-type dev thresholds "
                       "(apcer_max_X) cannot account for them", sorted(set(ev.attacks) - set(dev.attacks)))
    thresholds = _thresholds(dev, targets)
    for entry in thresholds.values():
        entry["dev"], entry["eval"] = _block(dev, entry["threshold"]), _block(ev, entry["threshold"])
    t_eer, t_hter = thresholds["eer"]["threshold"], thresholds["min_hter"]["threshold"]
    d_eer, d_hter = thresholds["eer"]["dev"], thresholds["min_hter"]["dev"]
    at_eer = dict(thresholds["eer"]["eval"], threshold=t_eer)
    t_own = eer_threshold(ev.pooled, ev.bona_fide)
    far_own, frr_own = farfrr(ev.pooled, ev.bona_fide, t_own)
    curve = roc(dev.pooled, dev.bona_fide, n_points, min_far)
    rff_far, rff_frr = farfrr_many(dev.pooled, dev.bona_fide, far_thresholds(dev.pooled, targets))
    cdcn = cdcn_compatible(dev_rows, eval_rows)
    result = {
        "format_version": 1,
        "attack_types": sorted(set(dev.attacks) | set(ev.attacks)),
        "dev_counts": dev.counts,
        "eval_counts": ev.counts,
        "dev_eer": {"threshold": t_eer, "far": d_eer["apcer_pooled"], "frr": d_eer["bpcer"],
                    "eer": (d_eer["apcer_pooled"] + d_eer["bpcer"]) / 2.0,
                    "definition": "(FAR + FRR) / 2 at the dev EER threshold (bob.measure.eer)"},
        "dev_min_hter": {"threshold": t_hter, "far": d_hter["apcer_pooled"], "frr": d_hter["bpcer"],
                         "hter": (d_hter["apcer_pooled"] + d_hter["bpcer"]) / 2.0},
        "eval_at_dev_eer_threshold": at_eer,
        "thresholds": thresholds,
        "eval_eer_own_threshold": {"threshold": t_own, "far": far_own, "frr": frr_own,
                                   "eer": (far_own + frr_own) / 2.0, "note": EOWN_NOTE},
        "auc": {"dev": auc_scores(dev.pooled, dev.bona_fide), "eval": auc_scores(ev.pooled, ev.bona_fide)},
        "dev_curves": {
            "roc_n_points": n_points, "min_far": min_far,
            "roc_thresholds": curve["thresholds"].tolist(), "roc_far": curve["far"].tolist(),
            "roc_frr": curve["frr"].tolist(), "det_x": curve["det_x"].tolist(), "det_y": curve["det_y"].tolist(),
            "roc_for_far_requested": list(targets), "roc_for_far_far": rff_far.tolist(),
            "roc_for_far_frr": rff_frr.tolist(),
        },
        "fta_adjusted_at_dev_eer_threshold": {"dev": _fta_adjusted(dev, d_eer),
                                              "eval": _fta_adjusted(ev, thresholds["eer"]["eval"])},
        "cdcn_compatible": cdcn,
    }
    result["rows"] = _rows(result, targets)
    return result


def _rows(result: dict, targets: Sequence[float]) -> dict:
    """The two reported rows, flat, for tables and for mean/std over folds."""
    c = result["cdcn_compatible"]
    e = result["eval_at_dev_eer_threshold"]
    iso = {
        "threshold": e["threshold"],
        "APCER_per_attack_type": dict(e["apcer_per_attack_type"]),
        "APCER_max": e["apcer_max"], "APCER_pooled": e["apcer_pooled"], "BPCER": e["bpcer"],
        "ACER": e["acer"], "HTER": e["hter"],
        "EER_dev": result["dev_eer"]["eer"],
        "AUC_dev": result["auc"]["dev"]["exact"], "AUC_eval": result["auc"]["eval"]["exact"],
        "FTA_eval": result["eval_counts"]["fta"],
    }
    for v in targets:
        entry = result["thresholds"][f"apcer_max_{_pct(v)}"]
        iso[f"BPCER@APCER{_pct(v)}"] = entry["eval"]["bpcer"]
        iso[f"APCER_max@APCER{_pct(v)}"] = entry["eval"]["apcer_max"]
    return {
        "cdcn_compatible": {
            "threshold": c["returned"]["val_threshold"],
            "APCER": c["returned"]["test_APCER"], "BPCER": c["returned"]["test_BPCER"],
            "ACER": c["returned"]["test_ACER"], "ACC": c["returned"]["test_ACC"],
            "APCER_per_attack_type": dict(c["extension_test_APCER_per_attack_type"]),
            "APCER_max": c["extension_test_APCER_max"],
        },
        "iso_30107_3": iso,
    }


def dev_metrics(rows: Sequence[ScoreRow]) -> dict:
    """Dev-only numbers for per-epoch logging and model selection (no eval scores involved)."""
    labels, scores, _ = _finite_arrays(rows)
    c = cdcn_threshold(labels, scores)
    err = cdcn_errors(labels, scores, c.threshold)
    split = split_rows(rows, "dev")
    t = eer_threshold(split.pooled, split.bona_fide)
    b = _block(split, t)
    return {"cdcn_threshold": c.threshold, "cdcn_ACC": err["ACC"], "cdcn_ACER": err["ACER"],
            "eer_threshold": t, "eer": (b["apcer_pooled"] + b["bpcer"]) / 2.0, "acer_at_eer": b["acer"],
            "auc": auc_scores(split.pooled, split.bona_fide)["exact"]}


def summarize_folds(results: Sequence[dict], ddof: int = 1) -> dict:
    """Mean and standard deviation over folds (OULU-NPU Protocols 3 and 4: six folds) of every number
    in the two rows; per-attack-type APCERs only for types present in every fold."""
    if not results:
        raise ValueError("no fold results to summarise")
    flat = []
    for r in results:
        entry = {}
        for row, values in r["rows"].items():
            for key, value in values.items():
                if isinstance(value, dict):
                    entry.update({f"{row}.{key}.{k}": v for k, v in value.items()})
                elif key != "threshold":
                    entry[f"{row}.{key}"] = value
        flat.append(entry)
    common = [k for k in flat[0] if all(k in f for f in flat)]
    metrics = {}
    for key in common:
        values = np.array([f[key] for f in flat], dtype=np.float64)
        std = float(values.std(ddof=ddof)) if len(values) > ddof else float("nan")
        metrics[key] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return {"n_folds": len(results), "std_ddof": ddof, "metrics": metrics}


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def _p(v) -> str:
    return "n/a" if v is None else f"{100 * v:8.3f}%"


def format_report(result: dict) -> str:
    """A readable table: both rows, per-attack APCER, and every threshold used (all chosen on dev)."""
    out = []
    add = out.append
    inputs = result.get("inputs")
    if inputs:
        add(f"dev:  {inputs['dev']}")
        add(f"eval: {inputs['eval']}")
    for name in ("dev", "eval"):
        c = result[f"{name}_counts"]
        types = ", ".join(f"{k} {v}" for k, v in c["n_attack_per_attack_type"].items())
        add(f"{name:4s} counts: {c['n_bona_fide']} bona fide, {c['n_attack']} attacks ({types}); "
            f"FTA {c['n_nan_bona_fide'] + c['n_nan_attack']}/{c['n_rows']} = {100 * c['fta']:.3f}%")
    add("")
    cd = result["cdcn_compatible"]
    rv, im = cd["returned"], cd["intermediate"]
    add("Row 1  CDCN-compatible (original performances(): dev threshold argmin|TPR+FPR-1| on sklearn's ROC,")
    add("       bona fide iff score > t, APCER pooled over attacks)")
    add(f"  threshold (dev score)   {rv['val_threshold']!r}")
    add(f"  eval   APCER {_p(rv['test_APCER'])}  BPCER {_p(rv['test_BPCER'])}  ACER {_p(rv['test_ACER'])}  "
        f"ACC {_p(rv['test_ACC'])}   (type1 {im['test_counts']['type1']}, type2 {im['test_counts']['type2']})")
    add(f"  dev    APCER {_p(im['val_APCER'])}  BPCER {_p(im['val_BPCER'])}  ACER {_p(rv['val_ACER'])}  "
        f"ACC {_p(rv['val_ACC'])}   (val_err = fpr[i] {_p(im['val_err'])})")
    per = "  ".join(f"{k} {_p(v).strip()}" for k, v in cd["extension_test_APCER_per_attack_type"].items())
    add(f"  extension, eval APCER per attack type (score > t): {per}; max {_p(cd['extension_test_APCER_max']).strip()}")
    add(f"  eval ACER at eval's own threshold {rv['best_test_threshold']!r}: {_p(rv['test_threshold_ACER']).strip()}"
        "  (not reportable: threshold from eval)")
    add("")
    e = result["eval_at_dev_eer_threshold"]
    add("Row 2  ISO/IEC 30107-3 (bob rules: bona fide iff score >= t; t = dev EER threshold)")
    add(f"  threshold (dev EER)     {e['threshold']!r}    dev EER {_p(result['dev_eer']['eer']).strip()}")
    per = "  ".join(f"{k} {_p(v).strip()}" for k, v in e["apcer_per_attack_type"].items())
    add(f"  eval   APCER per attack type: {per}")
    add(f"  eval   APCER_max {_p(e['apcer_max'])}  APCER_pooled {_p(e['apcer_pooled'])}  BPCER {_p(e['bpcer'])}")
    add(f"         ACER {_p(e['acer'])}  HTER {_p(e['hter'])}")
    rows = result["rows"]["iso_30107_3"]
    bp = "  ".join(f"{k.split('@')[1]}: {_p(v).strip()}" for k, v in rows.items() if k.startswith("BPCER@"))
    add(f"  eval   BPCER at APCER_max <= X on dev: {bp}")
    add(f"  AUC    dev {result['auc']['dev']['exact']:.6f}  eval {result['auc']['eval']['exact']:.6f}")
    f = result["fta_adjusted_at_dev_eer_threshold"]["eval"]
    if f["fta"] > 0:
        add(f"  eval with FTA: FAR {_p(f['far_with_fta']).strip()}  FRR {_p(f['frr_with_fta']).strip()} "
            f"(FTA {_p(f['fta']).strip()})")
    o = result["eval_eer_own_threshold"]
    add(f"  eval EER at eval's own threshold {o['threshold']!r}: {_p(o['eer']).strip()}  (for completeness; "
        "NOT a reportable number)")
    add("")
    add("Thresholds (all chosen on dev; bob rule score >= t)")
    add(f"  {'criterion':16s} {'threshold':>22s} {'dev APCERmax':>12s} {'dev BPCER':>10s} {'eval APCERmax':>13s} "
        f"{'eval APCERpool':>14s} {'eval BPCER':>10s} {'eval ACER':>10s} {'eval HTER':>10s}")
    for name, entry in result["thresholds"].items():
        d, v = entry["dev"], entry["eval"]
        add(f"  {name:16s} {entry['threshold']!r:>22s} {_p(d['apcer_max']):>12s} {_p(d['bpcer']):>10s} "
            f"{_p(v['apcer_max']):>13s} {_p(v['apcer_pooled']):>14s} {_p(v['bpcer']):>10s} {_p(v['acer']):>10s} "
            f"{_p(v['hter']):>10s}")
        if "per_attack_type_threshold" in entry and len(entry["per_attack_type_threshold"]) > 1:
            add("      per type: " + ", ".join(f"{k} {t!r}" for k, t in entry["per_attack_type_threshold"].items()))
    return "\n".join(out) + "\n"


def format_fold_summary(summary: dict) -> str:
    lines = [f"mean +- std over {summary['n_folds']} folds (std with ddof={summary['std_ddof']})"]
    for key, m in summary["metrics"].items():
        lines.append(f"  {key:45s} {100 * m['mean']:8.3f} +- {100 * m['std']:7.3f} %")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m DUM.metrics",
        description="PAD metrics from score files: the CDCN-compatible row and the ISO/IEC 30107-3 row, "
                    "thresholds chosen on dev. Several --dev/--eval pairs are folds: each is evaluated and "
                    "mean +- std is reported.")
    p.add_argument("--dev", nargs="+", required=True, type=Path,
                   help="dev score file(s); thresholds are chosen here")
    p.add_argument("--eval", nargs="+", required=True, type=Path,
                   help="eval/test score file(s), paired with --dev by position")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="score file format: auto (our CSV, found by its header), csv, bob ('label score', "
                        "1/-1, NaN = failure to acquire), cdcn ('score label', 1/0, the original files)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="write metrics.json, report.txt, ROC/DET/histogram PNGs, config.json and log.txt "
                        "here (default: only print the report)")
    p.add_argument("--points", type=int, default=100, help="points of the dev ROC/DET stored in the JSON (bob's n)")
    p.add_argument("--min-far", type=int, default=-8, help="lowest rate of the stored ROC, as a power of 10")
    p.add_argument("--targets", type=float, nargs="+", default=list(DEFAULT_TARGETS),
                   help="APCER/FAR/FRR operating points (rates in (0, 1))")
    p.add_argument("--std-ddof", type=int, default=1, help="delta degrees of freedom of the std over folds")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG curves")
    return p


def run(args) -> dict:
    """Evaluate each dev/eval pair; with --out-dir write everything. Returns the result (or the folds)."""
    from DUM.plots import plot_curves  # here, not at the top: DUM.plots imports this module
    from utils.run import save_config

    if len(args.dev) != len(args.eval):
        raise InputError(f"{len(args.dev)} --dev file(s) but {len(args.eval)} --eval file(s); they pair up")
    if args.out_dir is not None:
        save_config(args, args.out_dir)
    folds = []
    for i, (dev_path, eval_path) in enumerate(zip(args.dev, args.eval)):
        dev_rows, eval_rows = read_scores(dev_path, args.format), read_scores(eval_path, args.format)
        logger.info("dev %s: %d rows; eval %s: %d rows", dev_path, len(dev_rows), eval_path, len(eval_rows))
        result = evaluate(dev_rows, eval_rows, n_points=args.points, min_far=args.min_far, targets=args.targets)
        result["inputs"] = {"dev": str(dev_path), "eval": str(eval_path), "format": args.format}
        report = format_report(result)
        header = f"== fold {i + 1}/{len(args.dev)} ==\n" if len(args.dev) > 1 else ""
        sys.stdout.write(header + report)
        if args.out_dir is not None:
            sub = args.out_dir if len(args.dev) == 1 else args.out_dir / f"fold_{i + 1}"
            atomic_write_json(sub / "metrics.json", result)
            atomic_write_text(sub / "report.txt", report)
            if not args.no_plots:
                plot_curves(dev_rows, eval_rows, sub, result=result)
            logger.info("wrote %s", sub)
        folds.append(result)
    if len(folds) == 1:
        return folds[0]
    summary = summarize_folds(folds, ddof=args.std_ddof)
    text = format_fold_summary(summary)
    sys.stdout.write(text)
    if args.out_dir is not None:
        atomic_write_json(args.out_dir / "summary.json", summary)
        atomic_write_text(args.out_dir / "summary.txt", text)
    return {"folds": folds, "summary": summary}


def main(argv=None):
    from utils.run import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.out_dir)
    try:
        return run(args)
    except InputError as exc:
        logger.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
