"""Cross-dataset testing end to end: train on dataset A, threshold on A's dev rows, HTER on B's test rows
read from B's own crop tree (DUM/test.py --test-list --test-crop-root), the same numbers from
python -m DUM.metrics on the two score files, and the run placed in DUM.report's cross-dataset table.

A and B are two tiny demo sets (tests/dum_testdata.py trees, real crop stage) whose photos get
different seeded gain, offset and noise, so the two crop trees hold different pixels under the same
video names."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dum_testdata as td
from data.protocols import ProtocolItem, read_protocol, write_protocol
from DUM.metrics import command as metrics_command
from DUM import test as dum_test
from DUM import train as dum_train
from DUM.make_dataset import crop_dataset
from DUM.report import main as report_main

TINY = ["--image-size", "64", "--width", "0.25", "--batch-size", "8", "--ratio", "1.0", "--workers", "0",
        "--device", "cpu", "--eval-start", "1", "--eval-every", "1", "--frame-batch", "4"]


def demo_set(root: Path, photos: dict, seed: int, name: str) -> dict:
    """Frames of seeded-altered photos -> real crop stage -> one CSV protocol with a split column
    (+ the make_protocol JSON that names the dataset)."""
    rng = np.random.default_rng(seed)
    altered = {}
    for key, image in photos.items():
        gain, offset = rng.uniform(0.7, 1.3), rng.uniform(-25, 25)
        noisy = image.astype(np.float32) * gain + offset + rng.normal(0, 6, image.shape)
        altered[key] = np.clip(noisy, 0, 255).astype(np.uint8)
    data_root, crop_root = root / "images", root / "crops"
    td.write_full_tree(data_root, altered)
    crop_dataset.main(["--data-root", str(data_root), "--crop-root", str(crop_root), "--split", "train", "dev", "test",
                       "--image-size", "64", "--map-size", "8", "--workers", "1", "--seed", str(seed),
                       "--protocol-dir", str(data_root / "protocols")])
    rows = []
    for split in ("train", "dev", "test"):
        for it in read_protocol(data_root / "protocols" / "Protocol_1" / f"{split.capitalize()}.txt"):
            rows.append(ProtocolItem(video_id=it.video_id, label=it.label, attack_type=it.attack_type,
                                     subject=f"{name}_{it.subject}", split=split, path=it.video_id, fmt="csv"))
    csv_path = write_protocol(root / "protocols" / f"{name}.csv", rows, fmt="csv")
    (root / "protocols" / f"{name}.json").write_text(json.dumps({"dataset": name, "protocol": "demo"}))
    return {"crop_root": crop_root, "csv": csv_path, "rows": rows}


@pytest.fixture(scope="module")
def cross(tmp_path_factory, samples_dir):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("cross")
    photos = td.load_photos(samples_dir)
    a, b = demo_set(tmp / "A", photos, 1, "demo_a"), demo_set(tmp / "B", photos, 2, "demo_b")
    dum_train.main(["--crop-root", str(a["crop_root"]), "--protocol", str(a["csv"]), "--out-dir", str(tmp / "train"),
                    "--epochs", "1", *TINY])
    common = ["--checkpoint", str(tmp / "train" / "best.pt"), "--crop-root", str(a["crop_root"]), "--protocol",
              str(a["csv"]), "--device", "cpu", "--workers", "0", "--no-plots"]
    res = dum_test.main(common + ["--test-list", str(b["csv"]), "--test-crop-root", str(b["crop_root"]),
                                  "--out-dir", str(tmp / "a_to_b")])
    intra = dum_test.main(common + ["--test-list", str(b["csv"]), "--out-dir", str(tmp / "a_crops")])
    return {"tmp": tmp, "a": a, "b": b, "res": res, "intra": intra}


def _scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {r["video_id"]: float(r["score"]) for r in csv.DictReader(f)}


def test_threshold_from_source_dev_scores_from_target_crops(cross):
    tmp, a, b = cross["tmp"], cross["a"], cross["b"]
    out = tmp / "a_to_b"
    assert set(_scores(out / "scores_dev.csv")) == {r.video_id for r in a["rows"] if r.split == "dev"}
    assert set(_scores(out / "scores_test.csv")) == {r.video_id for r in b["rows"] if r.split == "test"}
    threshold = json.loads((out / "threshold.json").read_text())
    assert threshold["threshold_source"] == str(a["csv"])
    inputs = cross["res"]["inputs"]
    assert inputs["test_crop_root"] == str(b["crop_root"]) and inputs["eval"] == str(b["csv"])
    # the dev scores (and so every threshold) do not depend on the target; the test pixels do
    assert _scores(out / "scores_dev.csv") == _scores(tmp / "a_crops" / "scores_dev.csv")
    target, source = _scores(out / "scores_test.csv"), _scores(tmp / "a_crops" / "scores_test.csv")
    assert target.keys() == source.keys() and any(target[k] != source[k] for k in target)
    assert cross["res"]["rows"]["cdcn_compatible"]["threshold"] == cross["intra"]["rows"]["cdcn_compatible"]["threshold"]


def test_metrics_command_gives_the_same_hter_and_report_lists_it(cross, tmp_path):
    out = cross["tmp"] / "a_to_b"
    again = metrics_command.main(["--dev", str(out / "scores_dev.csv"), "--eval", str(out / "scores_test.csv"),
                              "--no-plots"])
    for row, keys in (("cdcn_compatible", ("threshold", "APCER", "BPCER", "ACER")),
                      ("iso_30107_3", ("threshold", "APCER_max", "BPCER", "ACER", "HTER"))):
        for key in keys:
            assert again["rows"][row][key] == pytest.approx(cross["res"]["rows"][row][key], rel=1e-9), (row, key)
    hter = cross["res"]["rows"]["iso_30107_3"]["HTER"]
    report_main([str(out), "--out", str(tmp_path / "results.md")])
    text = (tmp_path / "results.md").read_text()
    assert "## Cross-dataset HTER" in text
    assert f"| demo_a | demo_b | ISO/IEC 30107-3 | {100 * hter:.2f} |" in text
