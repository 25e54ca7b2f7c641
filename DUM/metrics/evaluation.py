"""Both rows together for a dev/eval pair (``score_metrics``), and dev-only numbers for model selection."""
from __future__ import annotations

import logging
from typing import Sequence

from DUM.metrics.cdcn import (all_arrays, cdcn_compatible, cdcn_errors, cdcn_errors_fta, cdcn_threshold,
                              finite_arrays)
from DUM.metrics.iso import DEFAULT_TARGETS, dev_thresholds, fta_adjusted, iso_block, pct_label
from DUM.metrics.splits import fta_as_errors, split_rows
from DUM.metrics.thresholds import auc_scores, eer_threshold, far_thresholds, farfrr, farfrr_many, roc
from DUM.scores import ScoreRow

logger = logging.getLogger(__name__)

FTA_RULES = {
    "error": ("failures to acquire (videos without a score) count as wrong decisions in both rows: an "
              "attack that cannot be scored as accepted (APCER), a bona fide video as rejected (BPCER); "
              "thresholds are chosen on the dev videos that have a score. ISO/IEC 30107-3 reports "
              "presentations without a PAD decision as non-response rates (APNRR, BPNRR, given too); "
              "counting them as errors is the conservative reading, so no failure can make a system look "
              "better"),
    "drop": ("failures to acquire are left out of both rows and reported apart (FTA, APNRR, BPNRR), as "
             "bob.measure's 'metrics' command does; an attack the system cannot score then lowers no rate"),
}
EOWN_NOTE = ("eval EER at a threshold chosen on eval itself: for completeness only, optimistically "
             "biased, NOT a reportable number")


def score_metrics(dev_rows: Sequence[ScoreRow], eval_rows: Sequence[ScoreRow], *, n_points: int = 100,
             min_far: int = -8, targets: Sequence[float] = DEFAULT_TARGETS, fta_rule: str = "error") -> dict:
    """Both rows, every threshold (all chosen on dev), curves and counts; a JSON-serialisable dict.

    The detailed blocks (``thresholds.*.eval``, ``eval_at_dev_eer_threshold``, ``cdcn_compatible``)
    leave NaN rows out, as bob and the original do; ``*_fta_as_errors`` blocks count them as errors.
    ``fta_rule`` (see ``FTA_RULES``) picks which of the two the reported ``rows`` hold."""
    if fta_rule not in FTA_RULES:
        raise ValueError(f"fta_rule must be one of {sorted(FTA_RULES)}, got {fta_rule!r}")
    dev, ev = split_rows(dev_rows, "dev"), split_rows(eval_rows, "eval")
    folded = fta_as_errors(ev)
    if set(ev.attacks) - set(dev.attacks):
        logger.warning("attack types %s occur in eval but not in dev: the per-type dev thresholds "
                       "(apcer_max_X) cannot account for them", sorted(set(ev.attacks) - set(dev.attacks)))
    thresholds = dev_thresholds(dev, targets)
    for entry in thresholds.values():
        entry["dev"], entry["eval"] = iso_block(dev, entry["threshold"]), iso_block(ev, entry["threshold"])
        entry["eval_fta_as_errors"] = iso_block(folded, entry["threshold"])
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
        "fta_rule": {"rule": fta_rule, "description": FTA_RULES[fta_rule]},
    }
    result["rows"] = _rows(result, targets, fta_rule)
    return result


def _non_response(counts: dict) -> tuple[float, float]:
    """(APNRR, BPNRR): the share of attack and of bona fide rows without a score."""
    n_att = counts["n_attack"] + counts["n_nan_attack"]
    n_bf = counts["n_bona_fide"] + counts["n_nan_bona_fide"]
    return counts["n_nan_attack"] / n_att, counts["n_nan_bona_fide"] / n_bf


def _rows(result: dict, targets: Sequence[float], fta_rule: str = "error") -> dict:
    """The two reported rows, flat, for tables and for mean/std over folds."""
    errors = fta_rule == "error"
    key = "eval_fta_as_errors" if errors else "eval"
    c = result["cdcn_compatible"]
    e = dict(result["thresholds"]["eer"][key], threshold=result["thresholds"]["eer"]["threshold"])
    apnrr, bpnrr = _non_response(result["eval_counts"])
    iso = {
        "threshold": e["threshold"],
        "APCER_per_attack_type": dict(e["apcer_per_attack_type"]),
        "APCER_max": e["apcer_max"], "APCER_pooled": e["apcer_pooled"], "BPCER": e["bpcer"],
        "ACER": e["acer"], "HTER": e["hter"],
        "EER_dev": result["dev_eer"]["eer"],
        "AUC_dev": result["auc"]["dev"]["exact"], "AUC_eval": result["auc"]["eval"]["exact"],
        "FTA_eval": result["eval_counts"]["fta"], "APNRR_eval": apnrr, "BPNRR_eval": bpnrr,
    }
    for v in targets:
        entry = result["thresholds"][f"apcer_max_{pct_label(v)}"]
        iso[f"BPCER@APCER{pct_label(v)}"] = entry[key]["bpcer"]
        iso[f"APCER_max@APCER{pct_label(v)}"] = entry[key]["apcer_max"]
    if errors:
        f = c["fta_as_errors"]
        cdcn = {"APCER": f["test_APCER"], "BPCER": f["test_BPCER"], "ACER": f["test_ACER"], "ACC": f["test_ACC"],
                "APCER_per_attack_type": dict(f["test_APCER_per_attack_type"]), "APCER_max": f["test_APCER_max"]}
    else:
        r = c["returned"]
        cdcn = {"APCER": r["test_APCER"], "BPCER": r["test_BPCER"], "ACER": r["test_ACER"], "ACC": r["test_ACC"],
                "APCER_per_attack_type": dict(c["extension_test_APCER_per_attack_type"]),
                "APCER_max": c["extension_test_APCER_max"]}
    return {"cdcn_compatible": {"threshold": c["returned"]["val_threshold"], **cdcn}, "iso_30107_3": iso}


def dev_metrics(rows: Sequence[ScoreRow], fta_rule: str = "error") -> dict:
    """Dev-only numbers for per-epoch logging and model selection (no eval scores involved). Thresholds
    come from the scored rows; with ``fta_rule="error"`` rows without a score count as errors in the
    rates (a model whose output is not finite on a video is not rewarded for it)."""
    if fta_rule not in FTA_RULES:
        raise ValueError(f"fta_rule must be one of {sorted(FTA_RULES)}, got {fta_rule!r}")
    labels, scores, _ = finite_arrays(rows)
    c = cdcn_threshold(labels, scores)
    if fta_rule == "error":
        all_labels, all_scores, _ = all_arrays(rows)
        err = cdcn_errors_fta(all_labels, all_scores, c.threshold)
    else:
        err = cdcn_errors(labels, scores, c.threshold)
    split = split_rows(rows, "dev")
    t = eer_threshold(split.pooled, split.bona_fide)
    b = iso_block(fta_as_errors(split) if fta_rule == "error" else split, t)
    return {"cdcn_threshold": c.threshold, "cdcn_ACC": err["ACC"], "cdcn_ACER": err["ACER"],
            "cdcn_APCER": err["APCER"], "cdcn_BPCER": err["BPCER"],
            "eer_threshold": t, "eer": (b["apcer_pooled"] + b["bpcer"]) / 2.0, "acer_at_eer": b["acer"],
            "auc": auc_scores(split.pooled, split.bona_fide)["exact"]}
