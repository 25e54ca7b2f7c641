"""python -m DUM.report: runs found and placed, both metric rows, mean ± std over folds, hand-computed."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from DUM.metrics import score_metrics
from DUM.report import collect, main, mean_std, row_values
from DUM.scores import ScoreRow
from utils.io import atomic_write_json

DEV = [ScoreRow("d1", 1, "", 0.9), ScoreRow("d2", 1, "", 0.8), ScoreRow("d3", 0, "print", 0.1),
       ScoreRow("d4", 0, "replay", 0.2)]
# test A: one live below every dev threshold, the replay above: CDCN (score > 0.8) APCER 1/2, BPCER 1/2;
# ISO (score >= 0.5, the dev EER threshold) APCER print 0, replay 1 -> max 1, BPCER 1/2, ACER 3/4, HTER 1/2
TEST_A = [ScoreRow("t1", 1, "", 0.9), ScoreRow("t2", 1, "", 0.3), ScoreRow("t3", 0, "print", 0.1),
          ScoreRow("t4", 0, "replay", 0.85)]
# test B: both live accepted: CDCN APCER 1/2, BPCER 0, ACER 1/4
TEST_B = [ScoreRow("t1", 1, "", 0.9), ScoreRow("t2", 1, "", 0.95), ScoreRow("t3", 0, "print", 0.1),
          ScoreRow("t4", 0, "replay", 0.85)]


def write_run(folder: Path, test_rows, bench=None, inputs=None) -> Path:
    metrics = score_metrics(DEV, test_rows)
    metrics["inputs"] = inputs or {"dev": "dev.csv", "eval": "test.csv", "protocol": "x.csv", "fold": None}
    atomic_write_json(folder / "metrics.json", metrics)
    if bench:
        atomic_write_json(folder / "benchmark.json", bench)
    return folder / "metrics.json"


def test_row_values_both_rows_hand_computed(tmp_path):
    v = row_values(json.loads(write_run(tmp_path, TEST_A).read_text()))
    assert v["cdcn_compatible"] == pytest.approx({"APCER": 0.5, "BPCER": 0.5, "ACER": 0.5, "HTER": 0.5,
                                                  "EER": v["iso_30107_3"]["EER"]})
    assert v["iso_30107_3"]["APCER"] == 1.0 and v["iso_30107_3"]["ACER"] == 0.75 and v["iso_30107_3"]["HTER"] == 0.5


def test_mean_std_uses_the_sample_std():
    assert mean_std([0.5, 0.25]) == pytest.approx((0.375, 0.1767767))
    assert mean_std([0.2])[1] != mean_std([0.2])[1]  # NaN: no spread from one fold


def test_report_tables_siw_folds_oulu_siwm_and_cross(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "siw_p2" / "f1", TEST_A, {"dataset": "siw", "protocol": "2", "fold": "1"})
    write_run(runs / "siw_p2" / "f2", TEST_B, {"dataset": "siw", "protocol": "2", "fold": "2"})
    write_run(runs / "oulu" / "fold_3", TEST_B, inputs={"dev": "d", "eval": "e", "protocol": 3, "fold": 3})
    write_run(runs / "siwm" / "replay", TEST_A, {"dataset": "siwm", "protocol": "loo", "fold": "replay"})
    write_run(runs / "siwm" / "print", TEST_B, {"dataset": "siwm", "protocol": "loo", "fold": "print"})
    # cross-dataset placed by the make_protocol JSONs beside the dev and test CSVs
    for name, dataset in (("casia", "casia"), ("replay_grandtest", "replay")):
        atomic_write_json(tmp_path / "protocols" / f"{name}.json", {"dataset": dataset, "protocol": "x"})
    write_run(runs / "cross", TEST_A, inputs={"dev": str(tmp_path / "protocols" / "casia.csv"),
                                              "eval": str(tmp_path / "protocols" / "replay_grandtest.csv"),
                                              "protocol": "casia.csv", "fold": None})
    out = tmp_path / "results.md"
    main([str(runs), "--out", str(out)])
    text = out.read_text()
    # SiW protocol 2, CDCN row: APCER 50 both folds; BPCER 50 / 0; ACER 50 / 25 -> 37.50 ± 17.68
    assert "| 2 | CDCN-compatible | 50.00 ± 0.00 | 25.00 ± 35.36 | 37.50 ± 17.68 | 2 of 4 |" in text
    # ISO row: APCER max 100 both folds; BPCER 50 / 0; ACER 75 / 50 -> 62.50 ± 17.68
    assert "| 2 | ISO/IEC 30107-3 | 100.00 ± 0.00 | 25.00 ± 35.36 | 62.50 ± 17.68 | 2 of 4 |" in text
    assert "| 3 | CDCN-compatible | 50.00 | 0.00 | 25.00 | 1 of 6 |" in text  # OULU P3, one fold
    assert "| metric row | metric | replay | print | mean ± std (2 of 13) |" in text
    assert "| CDCN-compatible | ACER | 50.00 | 25.00 | 37.50 ± 17.68 |" in text
    assert "| CASIA-MFSD | Replay-Attack | CDCN-compatible | 50.00 |" in text
    assert "| CASIA-MFSD | Replay-Attack | ISO/IEC 30107-3 | 50.00 |" in text
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    hit = [r for r in rows if r["table"] == "SiW" and r["metric_row"] == "ISO/IEC 30107-3" and r["metric"] == "ACER"]
    assert len(hit) == 1 and hit[0]["mean"] == "62.5000" and hit[0]["std"] == "17.6777" and hit[0]["n"] == "2"


def test_the_same_run_twice_is_an_error_and_a_folder_without_metrics_too(tmp_path):
    write_run(tmp_path / "a", TEST_A, {"dataset": "siw", "protocol": "1"})
    write_run(tmp_path / "b", TEST_B, {"dataset": "siw", "protocol": "1"})
    with pytest.raises(Exception, match="both SiW protocol 1"):
        collect([tmp_path])
    assert len(collect([tmp_path / "a", tmp_path / "a"])) == 1  # one file named twice is one run
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "r.md")])


def test_runs_without_benchmark_json_are_named_by_their_folder_and_fold(tmp_path):
    """python -m DUM.metrics --out-dir DIR with two folds writes DIR/fold_1, DIR/fold_2: one setting, two folds."""
    write_run(tmp_path / "mine" / "fold_1", TEST_A, inputs={"dev": "d1.csv", "eval": "scores_test.csv"})
    write_run(tmp_path / "mine" / "fold_2", TEST_B, inputs={"dev": "d2.csv", "eval": "scores_test.csv"})
    runs = collect([tmp_path / "mine"])
    assert sorted((r.dataset, r.fold) for r in runs) == [("mine", "1"), ("mine", "2")]
    main([str(tmp_path / "mine"), "--out", str(tmp_path / "r.md")])
    assert "| - | CDCN-compatible | 50.00 ± 0.00 | 25.00 ± 35.36 | 37.50 ± 17.68 | 2 |" in (tmp_path / "r.md").read_text()
