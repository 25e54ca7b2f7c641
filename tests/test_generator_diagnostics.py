"""Generator diagnostics: LightCNN cosine within generated pairs against real pairs, diversity, the
labelled pair grid, and generated.py writing them for what it samples."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from generation.diagnostics import (COLUMNS, assign_types, identity_similarity, labelled_pair_grid,
                                    write_diagnostics_csv)
from networks.light_cnn import LightCNN29v2
from networks.vae import TypeClassifier
from tests.gen_fixtures import single_thread  # noqa: F401  (autouse fixture)
from tests.gen_fixtures import build_generator_data, build_lightcnn


@pytest.fixture(scope="module")
def lightcnn():
    torch.manual_seed(0)
    return LightCNN29v2(width=0.125).eval()


def test_similarities_by_construction(lightcnn):
    g = torch.Generator().manual_seed(0)
    faces = torch.rand(4, 3, 32, 32, generator=g)
    sims = identity_similarity(lightcnn, faces, faces.clone(), faces, faces.flip(0), users=["a", "a", "b", "b"])
    assert sims["sim_gen_pair"] == pytest.approx(1.0, abs=1e-5)  # identical live and spoof
    assert sims["sim_gen_between"] < 1.0 - 1e-4 and sims["pairs"] == 4
    # real pairs (i, 3 - i) are different images; live-live pairs of users a vs b exist
    assert -1 <= sims["sim_real_same"] < 1 - 1e-4 and -1 <= sims["sim_real_diff"] <= 1
    collapsed = identity_similarity(lightcnn, faces[:1].expand(4, -1, -1, -1), faces)
    assert collapsed["sim_gen_between"] == pytest.approx(1.0, abs=1e-5)  # one face for every pair: no diversity
    assert math.isnan(collapsed["sim_real_same"]) and math.isnan(collapsed["sim_real_diff"])


def test_types_and_labelled_grid(tmp_path):
    cls = TypeClassifier(hdim=8, attack_types=4)
    with torch.no_grad():
        cls.fc.weight.zero_()
        cls.fc.bias.copy_(torch.tensor([0.0, 5.0, 0.0, 0.0]))
    assert assign_types(cls, torch.zeros(2, 8)) == ["print 2 (0.98)"] * 2
    assert assign_types(cls, torch.zeros(1, 8), min_prob=0.99) == ["?"]
    png = labelled_pair_grid(torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16), ["print 1 (0.9)", "?", "?"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    path = write_diagnostics_csv(tmp_path / "m.csv", [{"epoch": 2, "sim_gen_pair": 0.5, "pairs": 3}])
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["epoch"] == "2" and row["sim_gen_pair"] == "0.5" and set(COLUMNS) <= set(row)


def test_generated_py_writes_diagnostics(tmp_path, samples_dir):
    import generated
    import train_generator

    data = build_generator_data(tmp_path, samples_dir)
    ip = build_lightcnn(tmp_path / "lightcnn.pth.tar", 0.125)
    model = tmp_path / "model"
    train_generator.main(["--img-root", str(data["img_root"]), "--train-list", str(data["train_list"]),
                          "--ip-model", str(ip), "--ip-width", "0.125", "--out-dir", str(model), "--image-size", "64",
                          "--width", "0.125", "--batch-size", "4", "--workers", "0", "--epochs", "1",
                          "--limit-batches", "1", "--num-preview", "0", "--device", "cpu", "--no-tensorboard"])
    out = tmp_path / "fake"
    result = generated.main(["--checkpoint", str(model / "last.pt"), "--num-pairs", "2", "--frames-per-folder", "2",
                             "--crop-root", str(tmp_path / "crop"), "--out-path", str(out), "--protocol-in",
                             str(data["protocol"]), "--protocol-out", str(tmp_path / "Train_g.txt"), "--device", "cpu",
                             "--on-no-face", "zero", "--diagnostics-pairs", "4"])
    sims = result["diagnostics"]
    assert sims["pairs"] == 4 and all(math.isfinite(sims[k]) for k in COLUMNS)
    with open(out / "metrics.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["sim_gen_pair"]) == pytest.approx(sims["sim_gen_pair"])
    assert (out / "pairs_labelled.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generator_previews_carry_the_diagnostics(tmp_path, samples_dir):
    import train_generator

    data = build_generator_data(tmp_path, samples_dir)
    ip = build_lightcnn(tmp_path / "lightcnn.pth.tar", 0.125)
    out = tmp_path / "model"
    train_generator.main(["--img-root", str(data["img_root"]), "--train-list", str(data["train_list"]),
                          "--ip-model", str(ip), "--ip-width", "0.125", "--out-dir", str(out), "--image-size", "64",
                          "--width", "0.125", "--batch-size", "4", "--workers", "0", "--epochs", "2",
                          "--limit-batches", "1", "--num-preview", "4", "--test-epoch", "2", "--device", "cpu",
                          "--no-tensorboard"])
    with open(out / "metrics_epoch.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # previews at epoch 1 and every --test-epoch
    for r in rows:
        assert -1 <= float(r["sim_gen_pair"]) <= 1 and -1 <= float(r["sim_real_same"]) <= 1
    assert (out / "previews" / "Epoch_002_pairs_labelled.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((out / "previews").glob("*index*"))  # the batch index is no grid
