"""DUM/make_dataset/crop_dataset.py on real photos with boxes from a fixed list."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

import dum_testdata as td
from data.boxes import Box, crop_face, read_box, write_box
from data.frames import box_name, depth_name, split_dirs
from DUM.make_dataset import crop_dataset
from utils.io import read_image


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory, samples_dir):
    root = tmp_path_factory.mktemp("crop") / "oulu_images"
    videos = td.write_full_tree(root, td.load_photos(samples_dir))
    return root, videos


def _crop(root: Path, out: Path, *extra) -> dict:
    return crop_dataset.main(["--data-root", str(root), "--crop-root", str(out), "--image-size", "64", "--map-size", "8",
                              "--workers", "2", *extra])


def _digests(tree: Path) -> dict:
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*.jpg"))}


def test_crops_match_the_box_and_scale(full_tree, tmp_path):
    root, videos = full_tree
    out = tmp_path / "crop"
    res = _crop(root, out, "--split", "train", "dev")
    assert res["done"] == 10 * (td.FRAMES_PER_VIDEO["train"] + td.FRAMES_PER_VIDEO["dev"]) and res["skipped"] == 0
    args = crop_dataset.build_parser().parse_args([])
    scales = set()
    for split in ("train", "dev"):
        src, dst = split_dirs(root, split), split_dirs(out, split)
        for video in videos[split][:3]:
            for frame in sorted(p.name for p in (src["img"] / video).iterdir()):
                box = read_box(src["bbox"] / video / box_name(frame))
                scale = crop_dataset.frame_scale(video, frame, split, args)
                scales.add((split, scale))
                face = read_image(dst["img"] / video / frame)
                depth = read_image(dst["depth"] / video / depth_name(frame), grey=True)
                assert face.shape == (64, 64, 3) and depth.shape == (8, 8)
                expected = crop_face(read_image(src["img"] / video / frame), box, scale=scale, size=64)
                assert np.abs(face.astype(float) - expected).mean() < 4  # JPEG round trip only
                full_depth = read_image(src["depth"] / video / depth_name(frame), grey=True)
                expected_d = crop_face(full_depth, box, scale=scale, size=8)
                assert np.abs(depth.astype(float) - expected_d).mean() < 4
                # same box for both: the blob centred on the face is centred in the depth crop
                peak = np.unravel_index(np.argmax(depth), depth.shape)
                assert 2 <= peak[0] <= 5 and 2 <= peak[1] <= 5
    assert {s for sp, s in scales if sp == "dev"} == {1.3}
    assert {s for sp, s in scales if sp == "train"} <= {1.2, 1.3, 1.4}
    assert (out / "logs" / "crop_train_dev" / "config.json").is_file()
    assert (out / "logs" / "crop_train_dev" / "log.txt").is_file()


def test_shards_and_reruns_agree(full_tree, tmp_path):
    root, _ = full_tree
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    _crop(root, whole, "--split", "train")
    _crop(root, sharded, "--split", "train", "--shard", "1/2")
    _crop(root, sharded, "--split", "train", "--shard", "2/2")
    assert _digests(whole) == _digests(sharded)  # the per-frame scale does not depend on the shard
    again = _crop(root, whole, "--split", "train")
    assert again["done"] == 0 and again["exists"] == 30
    other_seed = tmp_path / "seed1"
    _crop(root, other_seed, "--split", "train", "--seed", "1")
    assert _digests(other_seed) != _digests(whole)


def test_missing_box_depth_and_bad_box_are_reported(full_tree, tmp_path):
    root, videos = full_tree
    data = tmp_path / "data"
    import shutil
    shutil.copytree(root, data)
    src = split_dirs(data, "dev")
    v0, v1, v2 = videos["dev"][:3]
    f0 = sorted((src["img"] / v0).iterdir())[0].name
    f1 = sorted((src["img"] / v1).iterdir())[0].name
    f2 = sorted((src["img"] / v2).iterdir())[0].name
    (src["bbox"] / v0 / box_name(f0)).unlink()
    (src["depth"] / v1 / depth_name(f1)).unlink()
    write_box(src["bbox"] / v2 / box_name(f2), Box(5000, 5000, 10, 10))
    out = tmp_path / "crop"
    res = _crop(data, out, "--split", "dev", "--protocol-dir", str(data / "protocols"))
    assert res["skipped"] == 2 and res["no_depth"] == 1 and res["done"] == 10 * td.FRAMES_PER_VIDEO["dev"] - 3
    with open(res["report"], newline="") as f:
        rows = {r["item"]: r["reason"] for r in csv.DictReader(f)}
    assert "no box file" in rows[f"dev/{v0}/{f0}"]
    assert "no depth map" in rows[f"dev/{v1}/{f1}"]
    assert "outside" in rows[f"dev/{v2}/{f2}"]
    dst = split_dirs(out, "dev")
    for v, f in ((v0, f0), (v2, f2)):
        assert not (dst["img"] / v / f).exists() and not (dst["depth"] / v / depth_name(f)).exists()
    # No depth map: the image is cropped (attack training frames need none), the map is not invented.
    assert (dst["img"] / v1 / f1).is_file() and not (dst["depth"] / v1 / depth_name(f1)).exists()
    again = _crop(data, out, "--split", "dev")
    assert again["done"] == 0 and again["no_depth"] == 1 and again["exists"] == 10 * td.FRAMES_PER_VIDEO["dev"] - 3
    assert (out / "protocols" / "Protocol_1" / "Dev.txt").read_text() == (data / "protocols/Protocol_1/Dev.txt").read_text()


def test_missing_split_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        _crop(tmp_path / "nothing", tmp_path / "crop", "--split", "test")
