"""Presentation-attack-detection metrics from per-video scores, as a library and as a command.

Two rows are always reported side by side (docs/ORIGINAL.md 4, README "Metrics"):

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

Modules: ``thresholds`` (bob's threshold rules, ROC/DET, AUC), ``splits`` (rows grouped by class),
``iso`` (row 2), ``cdcn`` (row 1), ``evaluation`` (both rows for a dev/eval pair), ``folds`` (mean and
std over folds), ``report`` (text), ``command`` (the CLI, which also draws DUM.plots' curves; it is not
imported here, so that DUM.plots can import this package without a circle).
"""
from __future__ import annotations

from DUM.metrics.cdcn import (CdcnThreshold, all_arrays, cdcn_compatible, cdcn_errors,  # noqa: F401
                               cdcn_errors_fta, cdcn_threshold, finite_arrays)
from DUM.metrics.evaluation import EOWN_NOTE, FTA_RULES, dev_metrics, score_metrics  # noqa: F401
from DUM.metrics.folds import summarize_folds  # noqa: F401
from DUM.metrics.iso import DEFAULT_TARGETS, dev_thresholds, fta_adjusted, iso_block  # noqa: F401
from DUM.metrics.report import format_fold_summary, format_report  # noqa: F401
from DUM.metrics.splits import Split, fta_as_errors, split_rows  # noqa: F401
from DUM.metrics.thresholds import (auc_scores, eer_threshold, far_threshold, far_thresholds,  # noqa: F401
                                    farfrr, farfrr_many, frr_threshold, frr_thresholds, meaningful_thresholds,
                                    min_hter_threshold, ppndf, roc)
# read_scores/write_scores/ScoreRow stay reachable as DUM.metrics.* for callers and tests of the command
from DUM.scores import DEFAULT_ATTACK_TYPE, FORMATS, ScoreRow, read_scores, write_scores  # noqa: F401
