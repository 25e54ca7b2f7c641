"""DUM datasets: augmentation pieces, targets, frame choice, missing-data reporting."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

import dum_testdata as td
from data.frames import depth_name, frame_name, list_frames, split_dirs
from data.protocols import ProtocolItem, read_protocol
from DUM.dataset import (AugmentConfig, DepthEvalDataset, DepthTrainDataset, add_gamma, add_per_channel, augment,
                         cutout, gamma_contrast, normalize_image, random_erasing)
from utils.io import InputError, SkipReport, atomic_imwrite, read_image


@pytest.fixture(scope="module")
def tree(tmp_path_factory, samples_dir):
    return td.build_tree(tmp_path_factory.mktemp("dumdata"), samples_dir)


def _train_items(tree):
    return read_protocol(tree["crop_root"] / "protocols" / "Protocol_1" / "Train_g.txt")


def test_add_and_gamma():
    rng = np.random.default_rng(0)
    img = np.full((4, 4, 3), 100, np.uint8)
    out = add_per_channel(img, rng, 40).astype(int) - 100
    assert all(len(np.unique(out[..., c])) == 1 for c in range(3))  # one offset per channel
    assert np.all(np.abs(out) <= 40)
    assert add_per_channel(np.full((2, 2, 3), 250, np.uint8), np.random.default_rng(1), 40).max() <= 255
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    g = gamma_contrast(ramp, np.random.default_rng(0), 1.5, 1.5).astype(int)
    assert g[0, 0, 0] == 0 and g[-1, -1, 0] == 255 and np.all(np.diff(g[..., 0].ravel()) >= 0)
    assert g[8, 0, 0] == int(np.float32(255) * (np.float32(128 / 255) ** np.float32(1.5)))  # truncating LUT
    assert np.array_equal(gamma_contrast(ramp, np.random.default_rng(0), 1.0, 1.0), ramp)
    # the one-LUT form used by augment() equals Add then GammaContrast with the same draws
    photo = np.random.default_rng(5).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    for seed in range(5):
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        two_steps = gamma_contrast(add_per_channel(photo, r1, 40), r1, 0.5, 1.5)
        assert np.array_equal(add_gamma(photo, r2, AugmentConfig()), two_steps)


@pytest.mark.parametrize("fill,value", [("black", (0, 0, 0)), ("mean", (114, 123, 125))])
def test_random_erasing_fill(fill, value):
    cfg = AugmentConfig(erase_prob=1.0, erase_fill=fill)
    erased = 0
    for seed in range(20):
        img = np.full((64, 64, 3), 200, np.uint8)
        random_erasing(img, np.random.default_rng(seed), cfg)
        mask = np.any(img != 200, axis=2)
        erased += mask.any()
        assert np.all(img[mask] == np.array(value, np.uint8))          # BGR order of the mean
        assert mask.sum() <= 2 * 0.05 * 64 * 64 + 64                    # at most two small rectangles
    assert erased >= 15
    img = np.full((8, 8, 3), 7, np.uint8)
    random_erasing(img, np.random.default_rng(0), AugmentConfig(erase_prob=0.0))
    assert np.all(img == 7)


def test_cutout_and_normalisation_range():
    t = torch.full((3, 64, 64), 255.0)
    cutout(t, np.random.default_rng(3), 13)
    zero = (t[0] == 0)
    assert torch.equal(zero, t[1] == 0) and zero.sum() <= 12 * 12
    rows, cols = zero.any(1).nonzero(), zero.any(0).nonzero()
    if zero.any():
        assert zero.sum() == len(rows) * len(cols)  # a (clipped) rectangle
    x = normalize_image(torch.tensor([0.0, 127.5, 255.0]))
    assert torch.allclose(x, torch.tensor([-127.5 / 128, 0.0, 127.5 / 128]))
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    out, depth = augment(img, np.ones((8, 8), np.float32), np.random.default_rng(0), AugmentConfig())
    assert out.shape == (3, 64, 64) and out.min() >= -127.5 / 128 and out.max() <= 127.5 / 128
    assert depth.shape == (8, 8)


def test_train_items_targets_and_channel_order(tree):
    ds = DepthTrainDataset(_train_items(tree), tree["crop_root"], "train", 64, 8, augment_cfg=None)
    assert len(ds.real_indices) == 10 and len(ds.generated_indices) == 4
    dirs = split_dirs(tree["crop_root"], "train")
    for index, item in enumerate(ds.items):
        sample = ds[(index, 123)]
        assert sample["image"].shape == (3, 64, 64) and sample["depth"].shape == (8, 8)
        assert bool(sample["generated"]) == item.generated and int(sample["label"]) == item.label
        if item.label == 1:
            rng = np.random.default_rng([0, 0, 123, index])
            frame = ds.frames[index][int(rng.integers(len(ds.frames[index])))]
            expected = read_image(dirs["depth"] / item.video_id / depth_name(frame), grey=True) / 255.0
            assert torch.allclose(sample["depth"], torch.from_numpy(expected).float())
            bgr = read_image(dirs["img"] / item.video_id / frame)
            assert torch.allclose(sample["image"][0], normalize_image(torch.from_numpy(bgr[:, :, 2].copy())))
        else:
            assert torch.count_nonzero(sample["depth"]) == 0  # attacks, real and generated: zeros


def test_frame_choice_is_seeded_and_uses_the_listing(tree):
    ds = DepthTrainDataset(_train_items(tree), tree["crop_root"], "train", 64, 8, AugmentConfig(), seed=0)
    a, b = ds[(0, 5)], ds[(0, 5)]
    assert torch.equal(a["image"], b["image"])
    assert not torch.equal(ds[(0, 5)]["image"], ds[(0, 6)]["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[(0, 5)]["image"], a["image"])
    chosen = set()
    for draw in range(40):
        rng = np.random.default_rng([0, 1, draw, 0])
        chosen.add(ds.frames[0][int(rng.integers(len(ds.frames[0])))])
    listed = list_frames(split_dirs(tree["crop_root"], "train")["img"] / ds.items[0].video_id)
    assert chosen == set(listed[:-1])  # the original never drew a video's last frame (--frame-draw all does)


def test_missing_live_depth_is_reported_or_refused(tree, tmp_path):
    crop = tmp_path / "crop"
    shutil.copytree(tree["crop_root"], crop)
    dirs = split_dirs(crop, "train")
    live = "1_1_01_1"
    frames = list_frames(dirs["img"] / live)
    (dirs["depth"] / live / depth_name(frames[0])).unlink()
    for f in list_frames(dirs["img"] / "1_1_02_1"):  # a second live video loses every depth map
        (dirs["depth"] / "1_1_02_1" / depth_name(f)).unlink()
    items = _train_items(tree)
    report = SkipReport(tmp_path / "skipped.csv")
    ds = DepthTrainDataset(items, crop, "train", 64, 8, None, on_missing="skip", report=report)
    idx = [it.video_id for it in ds.items].index(live)
    assert ds.frames[idx] == frames[1:-1]                     # never trained on as a zero map (last: never drawn)
    assert "1_1_02_1" not in [it.video_id for it in ds.items]
    reasons = dict(report.rows)
    assert any(depth_name(frames[0]) in k for k in reasons)
    assert any(k.endswith("1_1_02_1") and "video not used" in r for k, r in reasons.items())
    with pytest.raises(InputError, match="missing training inputs"):
        DepthTrainDataset(items, crop, "train", 64, 8, None, on_missing="error")


def test_all_black_live_depth_is_missing_not_an_attack(tree, tmp_path):
    """A live frame whose depth map is all black (the mesh was put on another face) would train as an
    attack target: it is treated as missing, reported, and never drawn."""
    crop = tmp_path / "crop"
    shutil.copytree(tree["crop_root"], crop)
    dirs = split_dirs(crop, "train")
    live = "1_1_01_1"
    frames = list_frames(dirs["img"] / live)
    black = dirs["depth"] / live / depth_name(frames[0])
    assert read_image(black, grey=True).any()
    cv2.imwrite(str(black), np.zeros((8, 8), np.uint8))
    report = SkipReport(tmp_path / "skipped.csv")
    ds = DepthTrainDataset(_train_items(tree), crop, "train", 64, 8, None, on_missing="skip", report=report)
    idx = [it.video_id for it in ds.items].index(live)
    assert ds.frames[idx] == frames[1:-1]  # the last frame is never drawn (--frame-draw original)
    assert any(str(black) == k and "all black" in r for k, r in report.rows)
    for draw in range(30):  # every draw of the video has a live (non-zero) target
        assert ds[(idx, draw)]["depth"].max() > 0
    # a generated live face keeps an all-black label (generated.py --on-no-face zero writes it on purpose)
    gen = next(it for it in _train_items(tree) if it.generated and it.label == 1)
    gen_frames = list_frames(dirs["img"] / gen.video_id)
    cv2.imwrite(str(dirs["depth"] / gen.video_id / depth_name(gen_frames[0])), np.zeros((8, 8), np.uint8))
    ds = DepthTrainDataset(_train_items(tree), crop, "train", 64, 8, None, on_missing="skip")
    assert ds.frames[[it.video_id for it in ds.items].index(gen.video_id)] == [f for f in gen_frames if
                                                                              int(f.split("_")[0]) <= 99]


def test_eval_dataset_scores_every_frame_with_a_crop(tree, tmp_path):
    crop = tmp_path / "crop"
    shutil.copytree(tree["crop_root"], crop)
    dirs = split_dirs(crop, "dev")
    items = read_protocol(crop / "protocols" / "Protocol_1" / "Dev.txt")
    v0, v1, v2 = items[0].video_id, items[1].video_id, items[2].video_id
    f0 = list_frames(dirs["img"] / v0)
    (dirs["depth"] / v0 / depth_name(f0[0])).unlink()             # crop without depth
    (dirs["img"] / v1 / list_frames(dirs["img"] / v1)[-1]).unlink()  # depth without crop
    shutil.rmtree(dirs["img"] / v2)                                # nothing left to score
    report = SkipReport(tmp_path / "skipped.csv")
    ds = DepthEvalDataset(items, crop, "dev", 64, 8, report=report)
    assert len(ds) == len(items) - 1 and [it.video_id for it in ds.unscorable] == [v2]
    video = ds[0]
    assert video["item"].video_id == v0 and video["frames"] == f0   # the frame without a map is scored too
    n = len(f0)
    assert video["images"].shape == (n, 3, 64, 64) and video["images"].dtype == torch.uint8
    assert video["depth"].shape == (n, 8, 8) and video["depth"][1:].max() > 1  # raw 0-255, not /255
    assert video["depth"][0].abs().sum() == 0 and video["has_depth"] == [False] + [True] * (n - 1)
    reasons = " ".join(r for _, r in report.rows)
    assert "crop without depth map: " in reasons and "face template" in reasons
    assert "depth map without crop image" in reasons and "video not scored" in reasons


def _asymmetric_live_video(root, size: int = 64, map_size: int = 8):
    """One live video whose image and depth map are both bright on the left third only (flat regions
    survive JPEG), returned as the dataset's items."""
    dirs = split_dirs(root, "train")
    image = np.full((size, size, 3), 30, np.uint8)
    image[:, : size // 3] = 230
    depth = np.zeros((map_size, map_size), np.uint8)
    depth[:, : map_size // 3] = 255
    for n in (1, 2):
        atomic_imwrite(dirs["img"] / "1_1_01_1" / frame_name("1_1_01_1", n), image)
        atomic_imwrite(dirs["depth"] / "1_1_01_1" / depth_name(frame_name("1_1_01_1", n)), depth)
    return [ProtocolItem("1_1_01_1", 1, subject="01", file_id=1)]


@pytest.mark.parametrize("flip_prob", [0.0, 0.5, 1.0])
def test_flip_moves_image_and_depth_map_together(tmp_path, flip_prob):
    """An asymmetric live frame: under augmentation the depth target's bright side is the image's,
    whether or not the draw flipped (only the flip is on, so every pixel can be checked)."""
    items = _asymmetric_live_video(tmp_path)
    cfg = AugmentConfig(add=0, gamma=(1.0, 1.0), erase_prob=0.0, cutout_length=0, flip_prob=flip_prob)
    ds = DepthTrainDataset(items, tmp_path, "train", 64, 8, augment_cfg=cfg, seed=0)
    flipped = []
    for draw in range(16):
        sample = ds[(0, draw)]
        image_left = bool(sample["image"][:, :, :10].mean() > sample["image"][:, :, -10:].mean())
        depth = sample["depth"].numpy()
        depth_left = bool(depth[:, :2].mean() > 0.9 and depth[:, -2:].mean() < 0.1)
        depth_right = bool(depth[:, -2:].mean() > 0.9 and depth[:, :2].mean() < 0.1)
        assert depth_left or depth_right, depth
        assert image_left == depth_left, f"draw {draw}: image and depth map disagree on the bright side"
        flipped.append(not image_left)
    assert {0.0: not any(flipped), 1.0: all(flipped), 0.5: 0 < sum(flipped) < 16}[flip_prob]


def test_frame_draw_original_never_uses_a_real_videos_last_frame(tree):
    from DUM.dataset import drawable_frames

    names = [frame_name("1_1_01_1", n) for n in (1, 2, 3)]
    assert drawable_frames(names, generated=False) == names[:2]          # 1..n-1 of n = 3 crops
    assert drawable_frames(names, generated=False, rule="all") == names
    gen = [f"{n}_scene.jpg" for n in range(1, 101)]
    assert drawable_frames(gen, generated=True) == gen[:99]              # 1..99 of a generated folder
    assert drawable_frames([frame_name("v", 7)], generated=False) == [frame_name("v", 7)]  # one frame: kept
    original = DepthTrainDataset(_train_items(tree), tree["crop_root"], "train", 64, 8, augment_cfg=None)
    every = DepthTrainDataset(_train_items(tree), tree["crop_root"], "train", 64, 8, augment_cfg=None,
                              frame_draw="all")
    dirs = split_dirs(tree["crop_root"], "train")
    for index in original.real_indices:
        listed = list_frames(dirs["img"] / original.items[index].video_id)
        if len(listed) > 1:
            assert listed[-1] not in original.frames[index] and listed[-1] in every.frames[index]
