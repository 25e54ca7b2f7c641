"""Score dev and test with a trained CDCN(+DUM) and report both metric rows (docs/ORIGINAL.md 1.11, 3.8, 4).

Loads our checkpoints (``best.pt``/``last.pt``) and the released ``CDCN_U_P1.pkl`` (a plain
state_dict with ``module.`` keys) strictly. Each video is scored as the original: frame score =
sum(mu) / sum(depth), video score = mean over every frame that has a crop (a frame without a
usable depth map is divided by the face template's depth sum, DUM/denominator.py, and reported);
a video without any crop counts as a failure to acquire, an error in both metric rows, never scored
as a blank image. The threshold is chosen on dev and applied to test.

Writes to ``--out-dir`` (``fold_<k>/`` per fold for Protocols 3 and 4):
``scores_dev.csv``/``scores_test.csv`` (video_id,label,attack_type,score), the original
``map_score_val.txt``/``map_score_test.txt`` (``<score> <label>``), ``frame_scores_{dev,test}.csv``,
``metrics.json`` and ``report.txt`` (CDCN-compatible and ISO/IEC 30107-3 rows), ``roc.png``,
``det.png``, ``score_hist.png``, ``threshold.json``, ``skipped.csv``; for several folds also
``summary.json``/``summary.txt`` (mean and std over folds).

    python DUM/test.py --checkpoint DUM/checkpoint/CDCN_U_P1.pkl --crop-root oulu_images_crop --protocol 1
    python DUM/test.py --checkpoint 'runs/CDCN_U_P3_F{fold}/best.pt' --protocol 3 --all-folds
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import csv
import io
import logging

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from data.protocol_args import default_out_dir as protocol_out_dir
from data.protocol_args import is_oulu, protocol_arg, resolve_list
from data.protocols import describe, filter_split, read_protocol
from DUM.dataset import DepthEvalDataset
from DUM.engine import evaluate, original_format
from DUM.html_report import write_report
from DUM.metrics import format_fold_summary, format_report, score_metrics, summarize_folds
from DUM.panels import SIGMA_MAX, write_worst_panels
from DUM.plots import plot_curves
from DUM.scores import write_scores
from DUM.uncertainty import analyse, generated_frame_stats, plot_uncertainty
from networks.registry import DEPTH_NETS, load_model as load_network
from utils.checkpoint import CheckpointError, save_checkpoint
from utils.io import InputError, SkipReport, atomic_write_json, atomic_write_text
from utils.run import resolve_device, run_stage, save_config
from utils.schedule import default_workers, set_threads
from utils.training import autocast_dtype

log = logging.getLogger("DUM.test")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="best.pt/last.pt of DUM/train.py or the released CDCN_U_P1.pkl; '{fold}' is replaced by the fold")
    p.add_argument("--crop-root", default="oulu_images_crop", help="crop tree (dev_*_flod, test_*_flod)")
    p.add_argument("--test-crop-root", default=None,
                   help="crop tree of the test list when it differs (cross-dataset: the target dataset's crops, "
                        "with --test-list TARGET.csv; the threshold still comes from the source dev set)")
    p.add_argument("--protocol-dir", default=None, help="folder holding Protocol_<p>/ (default <crop-root>/protocols)")
    p.add_argument("--protocol", type=protocol_arg, default=1,
                   help="OULU-NPU protocol 1-4, or a CSV protocol whose split column gives dev and test rows")
    folds = p.add_mutually_exclusive_group()
    folds.add_argument("--fold", type=int, default=None, help="one fold 1-6 of protocols 3/4")
    folds.add_argument("--all-folds", action="store_true", help="all six folds of protocols 3/4 (the default there)")
    p.add_argument("--dev-list", default=None, help="explicit dev list (instead of the protocol's Dev file)")
    p.add_argument("--test-list", default=None, help="explicit test list (instead of the protocol's Test file)")
    a = p.add_argument_group("network of a plain state_dict saved at other settings (default: what the checkpoint "
                             "records, else recognised from its keys, at the published settings)")
    a.add_argument("--model", default=None, choices=DEPTH_NETS, help="network")
    a.add_argument("--theta", type=float, default=None, help="Conv2d_cd theta (CDCN family)")
    a.add_argument("--width", type=float, default=None, help="width multiplier")
    a.add_argument("--image-size", type=int, default=None, help="input side (map side = image size / 8)")
    p.add_argument("--frame-batch", type=int, default=64, help="frames per forward pass")
    p.add_argument("--workers", type=int, default=default_workers(), help="DataLoader workers (default min(4, CPU count - 1))")
    p.add_argument("--threads", type=int, default=0, help="torch/OpenCV CPU threads (0 = library default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--amp", action="store_true", help="float16 autocast on CUDA")
    p.add_argument("--save-threshold", action="store_true",
                   help="also store the dev thresholds in the checkpoint (ours only; atomic rewrite)")
    p.add_argument("--no-plots", action="store_true", help="skip the ROC/DET/histogram PNGs")
    p.add_argument("--out-dir", default=None,
                   help="output folder (default CDCN_U_P<p>_test, the original name; runs/<csv stem>/test for a CSV)")
    d = p.add_argument_group("uncertainty, panels and report (docs/REPORT.md)")
    d.add_argument("--panels", type=int, default=3,
                   help="panels (crop, depth label, mu, sigma) of the N worst attacks and N worst bona fide test videos "
                        "(0 = none)")
    d.add_argument("--panel-frames", type=int, default=3, help="frames per video shown as panels")
    d.add_argument("--sigma-max", type=float, default=SIGMA_MAX, help="top of the fixed sigma colour scale of the panels")
    d.add_argument("--generated-list", default="auto",
                   help="training list whose generated folders give the 'generated' sigma (auto = the checkpoint's "
                        "train_list when it holds generated items; none = skip)")
    d.add_argument("--generated-videos", type=int, default=20, help="generated folders drawn (seeded) for that")
    d.add_argument("--no-report", action="store_true", help="do not write report.html")
    return p


def default_out_dir(args) -> Path:
    if args.out_dir:
        return Path(args.out_dir)
    return protocol_out_dir(args.protocol, None, f"CDCN_U_P{args.protocol}_test", "test")


def fold_list(args) -> list[int | None]:
    if not is_oulu(args.protocol):
        if args.fold is not None or args.all_folds:
            raise InputError(f"--protocol {args.protocol} is a CSV protocol: it has no folds (drop --fold/--all-folds)")
        return [None]
    if args.protocol in (1, 2):
        if args.fold is not None or args.all_folds:
            raise InputError(f"protocol {args.protocol} has no folds (drop --fold/--all-folds)")
        return [None]
    if args.fold is not None:
        if args.fold not in range(1, 7):
            raise InputError(f"--fold must be 1..6, got {args.fold}")
        return [args.fold]
    return list(range(1, 7))


def lists_for(args, fold: int | None) -> tuple[Path, Path]:
    folder = Path(args.protocol_dir or Path(args.crop_root) / "protocols")
    return (resolve_list(args.protocol, "dev", folder, fold, args.dev_list),
            resolve_list(args.protocol, "test", folder, fold, args.test_list))


def load_model(args, path: Path, device: torch.device):
    """The network the checkpoint holds (networks/registry.py), weights loaded strictly."""
    model, arch, obj = load_network(path, model=args.model, theta=args.theta, width=args.width,
                                    image_size=args.image_size)
    log.info("loaded %s (%s, epoch %s) as %s", path, "training checkpoint" if "model" in obj else "plain state_dict",
             obj.get("epoch", "?"), arch)
    return model.to(device).eval(), arch, obj


def _frames_csv(frames) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video_id", "frame", "score"])
    writer.writerows((v, f, repr(float(s))) for v, f, s in frames)
    return buf.getvalue()


def score_fold(args, fold: int | None, out_dir: Path, device: torch.device) -> dict:
    path = Path(str(args.checkpoint).replace("{fold}", str(fold)))
    model, arch, obj = load_model(args, path, device)
    map_size = int(getattr(model, "map_size", arch["image_size"] // 8))
    dev_list, test_list = lists_for(args, fold)
    report = SkipReport(out_dir / "skipped.csv")
    results, datasets, stats = {}, {}, {}
    for split, plist in (("dev", dev_list), ("test", test_list)):
        items = filter_split(read_protocol(plist), split)
        log.info("%s %s: %s", split, plist, describe(items))
        crop_root = args.test_crop_root if split == "test" and args.test_crop_root else args.crop_root
        dataset = DepthEvalDataset(items, crop_root, split, arch["image_size"], map_size, report, str(plist))
        res = evaluate(model, dataset, device, args.frame_batch, args.workers,
                       amp_dtype=autocast_dtype("fp16" if args.amp else "off", device),
                       desc=split, frame_stats=True)
        datasets[split], stats[split] = dataset, res.frame_stats
        report.extend(res.problems)  # frames that failed at scoring time (construction problems are in already)
        write_scores(out_dir / f"scores_{split}.csv", res.rows)
        name = "map_score_val.txt" if split == "dev" else "map_score_test.txt"
        atomic_write_text(out_dir / name, original_format(res.rows))
        atomic_write_text(out_dir / f"frame_scores_{split}.csv", _frames_csv(res.frames))
        results[split] = res.rows
    report.write()
    metrics = score_metrics(results["dev"], results["test"])
    metrics["inputs"] = {"dev": str(dev_list), "eval": str(test_list), "checkpoint": str(path),
                         "crop_root": str(args.crop_root), "test_crop_root": str(args.test_crop_root or args.crop_root),
                         "protocol": args.protocol, "fold": fold, "architecture": arch}
    text = format_report(metrics)
    diagnose(args, model, arch, obj, map_size, device, datasets["test"], results["test"], stats["test"], metrics,
             out_dir)
    atomic_write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "report.txt", text)
    if not args.no_plots:
        plot_curves(results["dev"], results["test"], out_dir, result=metrics)
    threshold = {
        "threshold": metrics["cdcn_compatible"]["returned"]["val_threshold"],
        "threshold_rule": "CDCN-compatible: live iff score > threshold (dev EER point of sklearn's ROC)",
        "threshold_eer": metrics["dev_eer"]["threshold"],
        "threshold_eer_rule": "ISO/IEC 30107-3 EER: bona fide iff score >= threshold_eer",
        "threshold_source": str(dev_list), "checkpoint": str(path), "dev_videos": len(results["dev"]),
    }
    atomic_write_json(out_dir / "threshold.json", threshold)
    if args.save_threshold:
        store_threshold(path, obj, threshold)
    if not args.no_report:  # the training run beside the checkpoint adds its curves
        write_report(out_dir, train_dir=path.parent if (path.parent / "metrics.csv").is_file() else None)
    log.info("%s\n%s", f"protocol {args.protocol}" + (f" fold {fold}" if fold else ""), text)
    return metrics


def diagnose(args, model, arch, obj, map_size, device, dataset, rows, stats, metrics, out_dir: Path) -> None:
    """Uncertainty analysis (metrics["uncertainty"], uncertainty.png) and panels of the worst test
    videos (metrics["worst_videos"], panels/), both at the dev EER threshold (ISO row)."""
    threshold = metrics["dev_eer"]["threshold"]
    generated = []
    train_list = args.generated_list
    if train_list == "auto":
        cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        train_list = cfg.get("train_list") or "none"
    if train_list != "none" and Path(train_list).is_file():
        generated = generated_frame_stats(model, train_list, args.crop_root, arch["image_size"], map_size, device,
                                          args.generated_videos, args.frame_batch, args.workers)
    elif args.generated_list not in ("auto", "none"):
        raise InputError(f"--generated-list {args.generated_list}: no such file")
    metrics["uncertainty"] = analyse(rows, stats, threshold, generated)
    if any(s.sigma == s.sigma for s in stats):  # a network with logvar (not the CDCN baselines)
        plot_uncertainty(metrics["uncertainty"], stats, out_dir / "uncertainty.png", generated)
    if args.panels > 0:
        metrics["worst_videos"] = write_worst_panels(model, dataset, rows, threshold, out_dir / "panels", device,
                                                     args.panels, args.panel_frames, args.sigma_max)
    groups = metrics["uncertainty"]["by_group"]
    log.info("mean sigma: %s; risk-coverage area %.4f",
             ", ".join(f"{g} {v['mean_sigma']:.4g} ({v['frames']} frames)" for g, v in groups.items()) or "n/a",
             metrics["uncertainty"]["risk_coverage"]["aurc"])


def store_threshold(path: Path, obj: dict, threshold: dict) -> None:
    """Write the dev thresholds into our checkpoint (atomic); a plain released state_dict is left alone."""
    if "model" not in obj:
        log.warning("%s is a plain state_dict (e.g. the released CDCN_U_P1.pkl): thresholds not stored in it; "
                    "use threshold.json", path)
        return
    obj = dict(obj)
    obj.update(threshold=threshold["threshold"], threshold_eer=threshold["threshold_eer"],
               threshold_source=threshold["threshold_source"],
               threshold_info={k: v for k, v in threshold.items() if k.endswith("rule") or k == "dev_videos"})
    save_checkpoint(obj, path)
    log.info("stored dev thresholds in %s", path)


def run(args) -> dict:
    folds = fold_list(args)
    out_dir = default_out_dir(args)
    if args.save_threshold and len(folds) > 1 and "{fold}" not in str(args.checkpoint):
        raise InputError("--save-threshold with several folds needs one checkpoint per fold ('{fold}' in --checkpoint)")
    if len(folds) > 1 and "{fold}" not in str(args.checkpoint):
        log.warning("one checkpoint for all %d folds: each fold should have its own model ('{fold}' in --checkpoint)",
                    len(folds))
    save_config(args, out_dir)
    set_threads(args.threads)
    device = resolve_device(args.device)
    with logging_redirect_tqdm():
        results = []
        for fold in folds:
            sub = out_dir if fold is None else out_dir / f"fold_{fold}"
            results.append(score_fold(args, fold, sub, device))
    if len(results) == 1:
        return results[0]
    summary = summarize_folds(results)
    text = format_fold_summary(summary)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.txt", text)
    log.info("protocol %s, %d folds\n%s", args.protocol, len(results), text)
    return {"folds": results, "summary": summary}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, default_out_dir(args), errors=(CheckpointError,))


if __name__ == "__main__":
    main()
