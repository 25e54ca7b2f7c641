"""Uncertainty analysis, depth panels and report.html: hand-computed risk-coverage, then DUM/test.py
end to end on a tiny trained model (panels, uncertainty.png, metrics.json, a self-contained report),
opened in headless Chromium when one is installed."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dum_testdata as td
from DUM import test as dum_test
from DUM import train as dum_train
from DUM.engine import FrameStat
from DUM.html_report import write_report
from DUM.panels import render_panel, worst_videos
from DUM.scores import ScoreRow
from DUM.uncertainty import iso_acer, risk_coverage, sigma_by_group, spearman
from utils.browser import BrowserError, check_report, find_browser

TINY = ["--image-size", "64", "--width", "0.25", "--batch-size", "8", "--ratio", "0.75", "--workers", "0",
        "--device", "cpu", "--eval-start", "1", "--eval-every", "1", "--frame-batch", "4"]


def _row(vid, label, score, kind="print"):
    return ScoreRow(vid, label, "" if label else kind, score)


def test_iso_acer_and_risk_coverage_by_hand():
    rows = [_row("a", 1, 0.9), _row("b", 1, 0.2), _row("c", 0, 0.8), _row("d", 0, 0.1, "replay")]
    # threshold 0.5: b falsely rejected (BPCER 1/2), c falsely accepted (print APCER 1, replay 0)
    assert iso_acer(rows, 0.5) == pytest.approx((1.0 + 0.5) / 2)
    # the two errors are the most uncertain videos: setting them aside leaves no error
    sigmas = {"a": 0.1, "d": 0.2, "b": 0.8, "c": 0.9}
    rc = risk_coverage(rows, sigmas, 0.5)
    assert rc["coverage"] == [0.25, 0.5, 0.75, 1.0]
    assert rc["acer"] == pytest.approx([0.0, 0.0, (0 + 0.5) / 2, 0.75])
    assert rc["aurc"] == pytest.approx(np.mean([0, 0, 0.25, 0.75]))
    # reversed uncertainty: the errors come first and the area grows
    worse = risk_coverage(rows, {k: 1 - v for k, v in sigmas.items()}, 0.5)
    assert worse["aurc"] > rc["aurc"] and worse["acer_full"] == rc["acer_full"]


def test_spearman_and_groups():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    stats = [FrameStat("1_1_01_1", "1", 1, "", 0.2, 0.1), FrameStat("1_1_01_2", "1", 0, "print", 0.4, 0.3),
             FrameStat("p1_0_1_0", "1", 1, "generated", 0.6, 0.5), FrameStat("p1_0_0_0", "1", 0, "generated", 0.8, 0.5)]
    groups = sigma_by_group(stats)
    assert groups["live"]["mean_sigma"] == pytest.approx(0.2)
    assert groups["attack"]["mean_sigma"] == pytest.approx(0.4)
    assert groups["generated"]["mean_sigma"] == pytest.approx(0.7) and groups["generated"]["frames"] == 2


def test_worst_videos_orders_errors_first():
    rows = [_row("l1", 1, 0.9), _row("l2", 1, 0.1), _row("a1", 0, 0.95), _row("a2", 0, 0.2), _row("nan", 0, float("nan"))]
    picked = worst_videos(rows, 0.5, 1)
    assert [(r.video_id, tag) for r, tag in picked] == [("a1", "false accept"), ("l2", "false reject")]
    assert [tag for _, tag in worst_videos(rows, 0.99, 2)][:2] == ["correct", "correct"]


def test_panel_is_a_png_with_and_without_label():
    crop = np.zeros((32, 32, 3), np.uint8)
    mu, logvar = np.random.default_rng(0).random((8, 8)), np.full((8, 8), -2.0)
    with_label = render_panel(crop, mu, logvar, mu, "title")
    without = render_panel(crop, mu, None)
    assert with_label[:8] == b"\x89PNG\r\n\x1a\n" and without[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(with_label) > len(without)  # two more maps (label, sigma) and a colour bar


@pytest.fixture(scope="module")
def tested(tmp_path_factory, samples_dir):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tree = td.build_tree(tmp_path_factory.mktemp("unc"), samples_dir)
        run = tmp_path_factory.mktemp("run")
        dum_train.main(["--crop-root", str(tree["crop_root"]), "--protocol", "1", "--out-dir", str(run / "train"),
                        "--epochs", "1", *TINY])
        metrics = dum_test.main(["--checkpoint", str(run / "train" / "best.pt"), "--crop-root", str(tree["crop_root"]),
                                 "--protocol", "1", "--out-dir", str(run / "test"), "--workers", "0", "--device", "cpu",
                                 "--frame-batch", "4", "--panels", "2", "--panel-frames", "2"])
    finally:
        torch.set_num_threads(old)
    return {"out": run / "test", "train": run / "train", "metrics": metrics, "tree": tree}


def test_test_py_writes_uncertainty_panels_and_report(tested):
    out, metrics = tested["out"], tested["metrics"]
    unc = json.loads((out / "metrics.json").read_text())["uncertainty"]
    assert set(unc["by_group"]) == {"live", "attack", "generated"}  # generated: from the checkpoint's Train_g
    for group in unc["by_group"].values():
        assert group["mean_sigma"] > 0 and math.isfinite(group["mean_abs_error"])
    rc = unc["risk_coverage"]
    assert rc["videos"] > 0
    assert len(rc["acer"]) == rc["videos"] and rc["coverage"][-1] == 1.0
    assert rc["acer_full"] == pytest.approx(iso_acer(
        [ScoreRow(**r) for r in _scores(out / "scores_test.csv")], rc["threshold"]))
    assert (out / "uncertainty.png").stat().st_size > 1000
    worst = metrics["worst_videos"]
    assert {w["label"] for w in worst} == {0, 1} and all(len(w["panels"]) >= 1 for w in worst)
    assert all(Path(p).is_file() for w in worst for p in w["panels"])
    html = (out / "report.html").read_text()
    assert 'id="metrics-table"' in html and "ISO/IEC 30107-3" in html and "CDCN-compatible" in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from anywhere
    assert "Depth network training" in html  # the run beside the checkpoint adds its curves


def _scores(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return [{"video_id": r["video_id"], "label": int(r["label"]), "attack_type": r["attack_type"],
                 "score": float(r["score"])} for r in csv.DictReader(f)]


def test_report_of_a_training_run_alone(tested):
    path = write_report(tested["train"])
    html = path.read_text()
    assert 'id="metrics-table"' not in html and "Depth network training" in html
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 1  # the curves of metrics.csv


def test_report_opens_in_headless_chromium(tested, tmp_path):
    if find_browser() is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)")
    try:
        result = check_report(tested["out"] / "report.html", tmp_path / "shot.png", height=2400)
    except BrowserError as exc:
        if "sandbox" in str(exc).lower() or "display" in str(exc).lower():
            pytest.skip(f"Chromium cannot run here: {exc}")
        raise
    assert result["total"] >= 5 and result["images"] == result["total"]
    assert result["metrics_table"]
    assert (tmp_path / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_logs_sigma_of_real_and_generated_samples(tested):
    import csv

    with open(tested["train"] / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # the fixture's training list holds generated folders (Train_g.txt)
        assert 0 < float(r["sigma_real"]) < 10 and 0 < float(r["sigma_gen"]) < 10
    assert (tested["train"] / "report.html").is_file()
