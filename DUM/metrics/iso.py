"""The ISO/IEC 30107-3 row (bob rules: bona fide iff score >= t): error blocks at a threshold, every
threshold chosen on dev, and the FTA-adjusted rates."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from DUM.metrics.splits import Split
from DUM.metrics.thresholds import eer_threshold, far_threshold, frr_threshold, min_hter_threshold

DEFAULT_TARGETS = (0.01, 0.05, 0.1)  # APCER / FAR / FRR operating points (ISO BPCER100/20/10)


def iso_block(split: Split, t: float) -> dict:
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


def pct_label(v: float) -> str:
    return f"{v * 100:g}%"


def dev_thresholds(dev: Split, targets: Sequence[float]) -> dict:
    crit = {
        "eer": ("bob.measure.eer_threshold(dev attacks pooled, dev bona fide)",
                eer_threshold(dev.pooled, dev.bona_fide)),
        "min_hter": ("bob.measure.min_hter_threshold(dev attacks pooled, dev bona fide)",
                     min_hter_threshold(dev.pooled, dev.bona_fide)),
    }
    out = {name: {"criterion": c, "threshold": t} for name, (c, t) in crit.items()}
    for v in targets:
        out[f"far_pooled_{pct_label(v)}"] = {
            "criterion": f"bob.measure.far_threshold(dev attacks pooled, dev bona fide, far_value={v})",
            "target": v, "threshold": far_threshold(dev.pooled, v)}
        per_type = {k: far_threshold(s, v) for k, s in dev.attacks.items()}
        out[f"apcer_max_{pct_label(v)}"] = {
            "criterion": (f"max over attack types of bob.measure.far_threshold(dev attacks of that type, "
                          f"dev bona fide, {v}) (bob.pad.base calc_threshold('bpcer{round(1 / v)}'))"),
            "target": v, "threshold": max(per_type.values()), "per_attack_type_threshold": per_type}
        out[f"frr_{pct_label(v)}"] = {
            "criterion": f"bob.measure.frr_threshold(dev attacks pooled, dev bona fide, frr_value={v})",
            "target": v, "threshold": frr_threshold(dev.bona_fide, v)}
    return out


def fta_adjusted(split: Split, block: dict) -> dict:
    fta = split.counts["fta"]
    fmr, fnmr = block["apcer_pooled"], block["bpcer"]
    return {"fta": fta, "fmr": fmr, "fnmr": fnmr,
            "far_with_fta": fmr * (1 - fta), "frr_with_fta": fta + fnmr * (1 - fta)}
