"""``python -m DUM.metrics``: metrics, report and curves from score files, one dev/eval pair or folds."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from DUM.metrics.evaluation import FTA_RULES, score_metrics
from DUM.metrics.folds import summarize_folds
from DUM.metrics.iso import DEFAULT_TARGETS
from DUM.metrics.report import format_fold_summary, format_report
from DUM.plots import plot_curves
from DUM.scores import FORMATS, read_scores
from utils.io import InputError, atomic_write_json, atomic_write_text
from utils.run import save_config, setup_logging

logger = logging.getLogger(__name__)


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
    p.add_argument("--fta-rule", choices=sorted(FTA_RULES), default="error",
                   help="videos without a score (NaN, failures to acquire) in the reported rows: 'error' counts "
                        "them as wrong decisions (an attack as accepted, bona fide as rejected), 'drop' leaves "
                        "them out (bob.measure, the original); both are in metrics.json")
    p.add_argument("--std-ddof", type=int, default=1, help="delta degrees of freedom of the std over folds")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG curves")
    return p


def run(args) -> dict:
    """Evaluate each dev/eval pair; with --out-dir write everything. Returns the result (or the folds)."""
    if len(args.dev) != len(args.eval):
        raise InputError(f"{len(args.dev)} --dev file(s) but {len(args.eval)} --eval file(s); they pair up")
    if args.out_dir is not None:
        save_config(args, args.out_dir)
    folds = []
    for i, (dev_path, eval_path) in enumerate(zip(args.dev, args.eval)):
        dev_rows, eval_rows = read_scores(dev_path, args.format), read_scores(eval_path, args.format)
        logger.info("dev %s: %d rows; eval %s: %d rows", dev_path, len(dev_rows), eval_path, len(eval_rows))
        result = score_metrics(dev_rows, eval_rows, n_points=args.points, min_far=args.min_far, targets=args.targets,
                          fta_rule=args.fta_rule)
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
    args = build_parser().parse_args(argv)
    setup_logging(args.out_dir)
    try:
        return run(args)
    except InputError as exc:
        logger.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
