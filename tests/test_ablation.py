"""scripts/ablation.sh end to end on the tiny crop tree (smoke profile, one backbone: four cells),
and the table of DUM/ablation.py: both metric rows taken from each cell's test metrics, training
time and images/s from its metrics.csv, cells not run marked, mixed settings refused."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import pytest

import dum_testdata as td
from DUM import ablation
from DUM.report import row_values


@pytest.fixture(scope="module")
def ablated(tmp_path_factory, samples_dir, repo_root):
    tree = td.build_tree(tmp_path_factory.mktemp("ablation_tree"), samples_dir)
    out = tmp_path_factory.mktemp("ablation")
    cmd = ["bash", str(repo_root / "scripts" / "ablation.sh"), "--crop-root", str(tree["crop_root"]),
           "--profile", "smoke", "--backbones", "resnet18", "--out-dir", str(out), "--", "--device", "cpu"]
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    t0 = time.time()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {"out": out, "cmd": cmd, "env": env, "seconds": time.time() - t0, "stdout": res.stdout}


@pytest.mark.slow
def test_four_cells_trained_tested_and_tabled(ablated):
    out = ablated["out"]
    with open(out / "ablation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12  # every cell of the full ablation, the ones not run marked as such
    done = [r for r in rows if r["backbone"] == "ResNet-18"]
    assert len(done) == 4 and all(r["CDCN ACER"] != "not run" for r in done)
    assert all(r["CDCN ACER"] == "not run" for r in rows if r["backbone"] != "ResNet-18")
    for row in done:
        model = "resnet18_u" if row["DUM"] == "yes" else "resnet18"
        data = "realgen" if row["data"] == "real + generated" else "real"
        cell = out / f"{model}_{data}"
        # The numbers are the cell's own test metrics, in %.
        values = row_values(json.loads((cell / "test" / "metrics.json").read_text()))
        for key, short in ablation.ROW_NAMES.items():
            for m in ablation.METRICS:
                assert row[f"{short} {m}"] == f"{100 * values[key][m]:.2f}"
        config = json.loads((cell / "config.json").read_text())
        assert config["model"] == model and config["train_list"].endswith("Train_g.txt" if data == "realgen" else "Train.txt")
        history = list(csv.DictReader(open(cell / "metrics.csv", newline="")))
        seconds = sum(float(h["seconds"]) for h in history)
        images = sum(int(h["images"]) for h in history)
        assert images > 0 and float(row["train s"]) == pytest.approx(seconds, abs=0.06)
        assert float(row["train img/s"]) == pytest.approx(images / seconds, rel=0.01)
    text = (out / "ablation.md").read_text()
    assert "image_size 32" in text and "seed 0" in text and "ISO APCER" in text


@pytest.mark.slow
def test_rerun_skips_finished_cells(ablated):
    res = subprocess.run(ablated["cmd"], env=ablated["env"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("done earlier, skipped") == 4


@pytest.mark.slow
def test_cells_trained_with_other_settings_are_refused(ablated, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(ablated["out"], copy)
    cfg_path = copy / "resnet18_real" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["epochs"] = 7
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SystemExit):
        ablation.main(["--runs-dir", str(copy)])
    assert "other settings" in (copy / "ablation.log").read_text()


def test_cells_pair_every_backbone_with_its_dum_network():
    names = [(ablation.model_name(b, dum), d) for b, dum, d in ablation.cells()]
    assert len(set(names)) == 12
    assert {n for n, _ in names} == {"cdcn", "cdcn_u", "depthnet", "depthnet_u", "resnet18", "resnet18_u"}
