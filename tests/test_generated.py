"""generated.py: paired sampling into the crop tree, depth labels, merged protocol, determinism, resume."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.frames import list_frames
from data.protocols import read_protocol
from generation.trainer import load_generator, parameter_checksum
from tests.gen_fixtures import single_thread  # noqa: F401  (autouse fixture)
from tests.gen_fixtures import build_generator_data, build_lightcnn
from utils.io import InputError

FPF, PAIRS = 3, 6  # two folder pairs of three frames


@pytest.fixture(scope="module")
def generator_ckpt(tmp_path_factory, samples_dir):
    import train_generator

    root = tmp_path_factory.mktemp("gen_sampling")
    data = build_generator_data(root, samples_dir)
    ip = build_lightcnn(root / "lightcnn.pth.tar", 0.125)
    out = root / "model"
    train_generator.main(["--img-root", str(data["img_root"]), "--train-list", str(data["train_list"]),
                          "--ip-model", str(ip), "--ip-width", "0.125", "--out-dir", str(out), "--image-size", "64",
                          "--width", "0.125", "--batch-size", "4", "--workers", "0", "--epochs", "1",
                          "--limit-batches", "1", "--num-preview", "0", "--device", "cpu", "--no-tensorboard"])
    return {"checkpoint": out / "last.pt", "protocol": data["protocol"], "root": root}


def gen_args(ckpt, base: Path, *extra) -> list[str]:
    return ["--checkpoint", str(ckpt["checkpoint"]), "--num-pairs", str(PAIRS), "--frames-per-folder", str(FPF),
            "--crop-root", str(base / "crop"), "--out-path", str(base / "fake"), "--protocol-in", str(ckpt["protocol"]),
            "--protocol-out", str(base / "crop" / "protocols" / "Protocol_1" / "Train_g.txt"), "--seed", "7",
            "--device", "cpu", "--batch-size", "4", *extra]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generated_layout_protocol_determinism_resume(tmp_path, generator_ckpt):
    import generated

    base = tmp_path / "a"
    # An untrained generator draws no face the mesh can find: keep the pairs with zero depth (reported).
    result = generated.main(gen_args(generator_ckpt, base, "--on-no-face", "zero", "--save-raw"))
    assert result["complete"] == 2 and result["incomplete"] == [] and result["reported"] == PAIRS
    crop = base / "crop"
    for k in range(2):
        for d in (0, 1):
            folder = crop / "train_img_flod" / f"p1_0_{d}_{k}"
            assert list_frames(folder) == [f"{i}_scene.jpg" for i in range(1, FPF + 1)]
            image = cv2.imread(str(folder / "1_scene.jpg"))
            assert image.shape == (256, 256, 3)  # the 64-px generator is resized to 256
        for i in range(1, FPF + 1):
            depth = cv2.imread(str(crop / "train_depth_flod" / f"p1_0_1_{k}" / f"{i}_depth1D.jpg"), cv2.IMREAD_GRAYSCALE)
            assert depth.shape == (32, 32)
        assert not (crop / "train_depth_flod" / f"p1_0_0_{k}").exists()
    assert "no face mesh" in (base / "fake" / "skipped.csv").read_text()
    # --save-raw: the original generated.py layout, ids 0..99 per round of 100
    assert sorted(p.name for p in (base / "fake" / "p1_0_0").iterdir()) == [f"{i}_scene.jpg" for i in range(PAIRS)]
    assert (base / "fake" / "p1_1_0" / "5_scene.jpg").is_file()
    # spoof and live of a pair share the identity noise but differ (independent spoof noise)
    live = cv2.imread(str(crop / "train_img_flod" / "p1_0_1_0" / "1_scene.jpg")).astype(int)
    spoof = cv2.imread(str(crop / "train_img_flod" / "p1_0_0_0" / "1_scene.jpg")).astype(int)
    assert np.abs(live - spoof).mean() > 0

    # merged protocol: the real lines first and unchanged, then every generated folder exactly once
    protocol_out = crop / "protocols" / "Protocol_1" / "Train_g.txt"
    real = generator_ckpt["protocol"].read_text()
    merged = protocol_out.read_text()
    assert merged.startswith(real)
    extra = merged[len(real):].splitlines()
    assert sorted(extra) == sorted(["1,p1_0_1_0", "1,p1_0_1_1", "0,p1_0_0_0", "0,p1_0_0_1"])
    items = read_protocol(protocol_out)
    n_real = len(real.splitlines())
    assert [i.generated for i in items] == [False] * n_real + [True] * 4
    assert {(i.video_id, i.label) for i in items[n_real:]} == {("p1_0_1_0", 1), ("p1_0_1_1", 1), ("p1_0_0_0", 0),
                                                                 ("p1_0_0_1", 0)}

    # deterministic: the same seed in a fresh place gives the same bytes
    other = tmp_path / "b"
    generated.main(gen_args(generator_ckpt, other, "--on-no-face", "zero"))
    assert tree_bytes(crop / "train_img_flod") == tree_bytes(other / "crop" / "train_img_flod")
    assert tree_bytes(crop / "train_depth_flod") == tree_bytes(other / "crop" / "train_depth_flod")
    assert (other / "crop" / "protocols" / "Protocol_1" / "Train_g.txt").read_text() == merged

    # resumable: finished folders are skipped; a folder without its marker is redone identically
    before = tree_bytes(crop / "train_img_flod")
    (crop / "train_img_flod" / "p1_0_1_1" / ".complete.json").unlink()
    (crop / "train_img_flod" / "p1_0_1_1" / "2_scene.jpg").unlink()
    again = generated.main(gen_args(generator_ckpt, base, "--on-no-face", "zero"))
    assert again["already_done"] == 1 and again["complete"] == 2
    assert tree_bytes(crop / "train_img_flod") == before
    assert protocol_out.read_text() == merged

    # other settings on the same tree: refused unless --overwrite
    with pytest.raises(SystemExit):
        generated.main(gen_args(generator_ckpt, base, "--on-no-face", "zero", "--jpeg-quality", "90"))
    moved = generated.main(gen_args(generator_ckpt, base, "--on-no-face", "zero", "--jpeg-quality", "90", "--overwrite"))
    assert moved["already_done"] == 0 and moved["complete"] == 2


def test_resample_policy_leaves_faceless_folders_out(tmp_path, generator_ckpt):
    import generated

    args = generated.build_parser().parse_args(gen_args(generator_ckpt, tmp_path, "--max-resample", "1",
                                                        "--num-pairs", "2", "--frames-per-folder", "2"))
    with pytest.raises(InputError, match="no generated folder is complete"):
        generated.run(args)
    report = (tmp_path / "fake" / "skipped.csv").read_text()
    assert report.count("in 2 draws") == 2  # both pairs, after the first draw and one redraw
    assert not (tmp_path / "crop" / "train_img_flod" / "p1_0_1_0").exists()


def test_depth_label_of_a_real_face(samples_dir):
    from data.face_depth import FaceDepthEstimator
    from generation.sampling import depth_label

    frame = cv2.imread(str(samples_dir / "image_T1.jpg"))
    face = cv2.resize(frame[130:340, 110:270], (256, 256))
    with FaceDepthEstimator() as estimator:
        label = depth_label(estimator, cv2.cvtColor(face, cv2.COLOR_BGR2RGB))
    assert label is not None and label.shape == (32, 32) and label.dtype == np.uint8
    assert label.max() > 150 and (label == 0).mean() < 0.9


def test_merge_refuses_already_generated_input(tmp_path, generator_ckpt):
    from generation.sampling import merge_protocol

    src = tmp_path / "Train_g.txt"
    src.write_text(generator_ckpt["protocol"].read_text() + "1,p1_0_1_0\n0,p1_0_0_0\n")
    with pytest.raises(InputError, match="already lists generated folder"):
        merge_protocol(src, tmp_path / "out.txt", [("p1_0_1_0", "p1_0_0_0")], seed=0)
    # a protocol without a trailing newline still gets whole lines appended
    plain = tmp_path / "Train.txt"
    plain.write_text(generator_ckpt["protocol"].read_text().rstrip("\n"))
    info = merge_protocol(plain, tmp_path / "merged.txt", [("p1_0_1_3", "p1_0_0_3")], seed=0)
    assert info["generated_lines"] == 2 and info["total"] == info["real_lines"] + 2


def _other_generator(ckpt_path: Path, out: Path) -> Path:
    """The same checkpoint with seeded noise on the decoder: the generator of another fold."""
    ckpt = torch.load(ckpt_path, weights_only=True)
    g = torch.Generator().manual_seed(1)
    ckpt["decoder"] = {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                       for k, v in ckpt["decoder"].items()}
    torch.save(ckpt, out)
    return out


def _fold_args(ckpt: Path, base: Path, fold: int, protocol_in: Path, *extra) -> list[str]:
    return ["--checkpoint", str(ckpt), "--num-pairs", str(PAIRS), "--frames-per-folder", str(FPF),
            "--crop-root", str(base / "crop"), "--out-path", str(base / f"fake_{fold}"), "--protocol", "3",
            "--fold", str(fold), "--protocol-in", str(protocol_in),
            "--protocol-out", str(base / "crop" / "protocols" / "Protocol_3" / f"Train_g_{fold}.txt"),
            "--seed", "7", "--device", "cpu", "--batch-size", "4", "--on-no-face", "zero", *extra]


def test_protocol_3_folds_write_their_own_folders(tmp_path, generator_ckpt):
    """Two folds, each with its own generator, into one crop tree: each fold's merged list names only
    folders of that fold, written by that fold's generator, and the second fold leaves the first's
    images untouched (with shared ids it overwrote them, or refused to run)."""
    import generated

    generators = {1: generator_ckpt["checkpoint"], 2: _other_generator(generator_ckpt["checkpoint"], tmp_path / "g2.pt")}
    checksums = {k: parameter_checksum(load_generator(p)[0]) for k, p in generators.items()}
    assert checksums[1] != checksums[2]
    proto = tmp_path / "protocols" / "Protocol_3"
    proto.mkdir(parents=True)
    img_dir = tmp_path / "crop" / "train_img_flod"
    own, snapshot = {}, {}
    for fold in (1, 2):
        train = proto / f"Train_{fold}.txt"
        train.write_text(generator_ckpt["protocol"].read_text())
        result = generated.main(_fold_args(generators[fold], tmp_path, fold, train))
        assert result["complete"] == PAIRS // FPF and result["already_done"] == 0
        items = [i for i in read_protocol(result["protocol"]) if i.generated]
        own[fold] = {i.video_id for i in items}
        assert len(own[fold]) == 2 * PAIRS // FPF
        assert all(v.startswith(f"p3f{fold}_0_") for v in own[fold])
        snapshot[fold] = {v: tree_bytes(img_dir / v) for v in own[fold]}
    assert not own[1] & own[2]
    for fold in (1, 2):
        for video in own[fold]:
            marker = json.loads((img_dir / video / ".complete.json").read_text())
            assert marker["generator"] == checksums[fold], video
            assert tree_bytes(img_dir / video) == snapshot[fold][video], f"{video} changed by the other fold"


def test_protocol_3_needs_a_matching_fold(tmp_path, generator_ckpt, caplog):
    import generated

    train = tmp_path / "Train_1.txt"
    train.write_text(generator_ckpt["protocol"].read_text())
    no_fold = _fold_args(generator_ckpt["checkpoint"], tmp_path, 1, train)
    del no_fold[no_fold.index("--fold"):no_fold.index("--fold") + 2]
    for argv, message in [(no_fold, "pass --fold 1..6"),
                          (_fold_args(generator_ckpt["checkpoint"], tmp_path, 2, train), "a list of fold 1"),
                          (gen_args(generator_ckpt, tmp_path, "--fold", "1"), "protocol 1 has no folds")]:
        caplog.clear()
        with pytest.raises(SystemExit):
            generated.main(argv)
        assert message in caplog.text
    assert not (tmp_path / "crop").exists()  # refused before writing anything
