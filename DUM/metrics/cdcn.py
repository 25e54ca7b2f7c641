"""The CDCN-compatible row: the original ``performances(val, test)`` of ZitongYu/CDCN
``CVPR2020_paper_codes/utils.py`` (bona fide iff score > t, APCER pooled), plus a per-attack extension."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from DUM.scores import DEFAULT_ATTACK_TYPE, ScoreRow


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


def cdcn_errors_fta(labels, scores, threshold: float, attack_types=None) -> dict:
    """:func:`cdcn_errors` with every failure to acquire (NaN score) kept as a wrong decision: a bona
    fide NaN counts in type1 (rejected), a label-0 NaN in type2 (accepted), and every row counts in
    the denominators. Without NaN the numbers are those of :func:`cdcn_errors`."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-D and of equal length")
    live, nan = labels == 1, np.isnan(scores)
    if not live.any() or not (~live).any():
        raise ValueError("the CDCN metrics need both bona fide (label 1) and attack rows")
    rejected = nan | (scores <= threshold)      # NaN compares False: "nan |" makes it an error either way
    accepted = nan | (scores > threshold)
    type1 = int(np.count_nonzero(live & rejected))
    type2 = int(np.count_nonzero((labels == 0) & accepted))
    count, num_real = len(labels), int(live.sum())
    apcer, bpcer = type2 / (count - num_real), type1 / num_real
    out = {"ACC": 1 - (type1 + type2) / count, "APCER": apcer, "BPCER": bpcer, "ACER": (apcer + bpcer) / 2.0,
           "type1": type1, "type2": type2, "n_fta": int(nan.sum())}
    if attack_types is not None:
        types = np.asarray(attack_types, dtype=object)
        per = {}
        for t in sorted(set(types[~live])):
            sel = ~live & (types == t)
            per[str(t)] = int(np.count_nonzero(sel & accepted)) / int(sel.sum())
        out["APCER_per_attack_type"] = per
        out["APCER_max"] = max(per.values())
    return out


def all_arrays(rows: Sequence[ScoreRow]):
    """(labels, scores with NaN kept, attack types) of every row."""
    return (np.array([r.label for r in rows], dtype=np.int64), np.array([r.score for r in rows], dtype=np.float64),
            np.array([r.attack_type or DEFAULT_ATTACK_TYPE for r in rows], dtype=object))


def finite_arrays(rows: Sequence[ScoreRow]):
    keep = [r for r in rows if not math.isnan(r.score)]
    return (np.array([r.label for r in keep], dtype=np.int64), np.array([r.score for r in keep], dtype=np.float64),
            np.array([r.attack_type or DEFAULT_ATTACK_TYPE for r in keep], dtype=object))


def cdcn_compatible(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow]) -> dict:
    """``performances(val, test)``: the nine returned values, the intermediate ones, and the per-attack
    extension. NaN rows are dropped (the original cannot read them; sklearn rejects them)."""
    dl, ds, _ = finite_arrays(dev_rows)
    el, es, et = finite_arrays(eval_rows)
    val = cdcn_threshold(dl, ds)
    tst = cdcn_threshold(el, es)
    v = cdcn_errors(dl, ds, val.threshold)
    t = cdcn_errors(el, es, val.threshold, attack_types=et)
    tt = cdcn_errors(el, es, tst.threshold)
    dla, dsa, _ = all_arrays(dev_rows)
    ela, esa, eta = all_arrays(eval_rows)
    vf = cdcn_errors_fta(dla, dsa, val.threshold)
    tf = cdcn_errors_fta(ela, esa, val.threshold, attack_types=eta)
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
        "fta_as_errors": {
            "val_ACC": vf["ACC"], "val_APCER": vf["APCER"], "val_BPCER": vf["BPCER"], "val_ACER": vf["ACER"],
            "test_ACC": tf["ACC"], "test_APCER": tf["APCER"], "test_BPCER": tf["BPCER"], "test_ACER": tf["ACER"],
            "test_APCER_per_attack_type": tf["APCER_per_attack_type"], "test_APCER_max": tf["APCER_max"],
            "val_counts": {"type1": vf["type1"], "type2": vf["type2"], "fta": vf["n_fta"]},
            "test_counts": {"type1": tf["type1"], "type2": tf["type2"], "fta": tf["n_fta"]},
            "note": "same threshold; a NaN row (failure to acquire) is a wrong decision and counts in the rates",
        },
        "input_note": "NaN rows dropped; only label-0 rows count as attack errors, as in the original",
        "note": ("test_threshold_ACER uses a threshold chosen on eval itself (returned by the original, "
                 "not printed): optimistically biased, not a reportable number"),
    }
