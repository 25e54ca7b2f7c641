"""Both rows together for a dev/eval pair (``evaluate``), and dev-only numbers for model selection."""
from __future__ import annotations

import logging
from typing import Sequence

from DUM.metrics.cdcn import cdcn_compatible, cdcn_errors, cdcn_threshold, finite_arrays
from DUM.metrics.iso import DEFAULT_TARGETS, dev_thresholds, fta_adjusted, iso_block, pct_label
from DUM.metrics.splits import split_rows
from DUM.metrics.thresholds import auc_scores, eer_threshold, far_thresholds, farfrr, farfrr_many, roc
from DUM.scores import ScoreRow

logger = logging.getLogger(__name__)

EOWN_NOTE = ("eval EER at a threshold chosen on eval itself: for completeness only, optimistically "
             "biased, NOT a reportable number")


def evaluate(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow], *, n_points: int = 100,
             min_far: int = -8, targets: Sequence[float] = DEFAULT_TARGETS) -> dict:
    """Both rows, every threshold (all chosen on dev), curves and counts; a JSON-serialisable dict."""
    dev, ev = split_rows(dev_rows, "dev"), split_rows(eval_rows, "eval")
    if set(ev.attacks) - set(dev.attacks):
        logger.warning("attack types %s occur in eval but not in dev: the per-type dev thresholds "
                       "(apcer_max_X) cannot account for them", sorted(set(ev.attacks) - set(dev.attacks)))
    thresholds = dev_thresholds(dev, targets)
    for entry in thresholds.values():
        entry["dev"], entry["eval"] = iso_block(dev, entry["threshold"]), iso_block(ev, entry["threshold"])
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
        "fta_adjusted_at_dev_eer_threshold": {"dev": fta_adjusted(dev, d_eer),
                                              "eval": fta_adjusted(ev, thresholds["eer"]["eval"])},
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
        entry = result["thresholds"][f"apcer_max_{pct_label(v)}"]
        iso[f"BPCER@APCER{pct_label(v)}"] = entry["eval"]["bpcer"]
        iso[f"APCER_max@APCER{pct_label(v)}"] = entry["eval"]["apcer_max"]
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
    labels, scores, _ = finite_arrays(rows)
    c = cdcn_threshold(labels, scores)
    err = cdcn_errors(labels, scores, c.threshold)
    split = split_rows(rows, "dev")
    t = eer_threshold(split.pooled, split.bona_fide)
    b = iso_block(split, t)
    return {"cdcn_threshold": c.threshold, "cdcn_ACC": err["ACC"], "cdcn_ACER": err["ACER"],
            "eer_threshold": t, "eer": (b["apcer_pooled"] + b["bpcer"]) / 2.0, "acer_at_eer": b["acer"],
            "auc": auc_scores(split.pooled, split.bona_fide)["exact"]}
