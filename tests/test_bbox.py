"""MTCNN in PyTorch (networks/mtcnn.py, data/mtcnn_weights.py, data/mtcnn.py) and the face-box stage (data/bbox.py) on real faces and bad input."""
from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data import bbox as stage
from data.boxes import read_box
from data.frames import split_dirs
from data.mtcnn import MTCNN, Face, fit_max_side, select_face
from data.mtcnn_weights import MTCNNWeightsError, _read_weight_list, load_keras_weights, mtcnn_weights_dir
from networks.mtcnn import ONet, PNet, RNet
from utils.io import SkipReport


@pytest.fixture(scope="module")
def detector():
    return MTCNN(min_face_size=20, device="cpu")  # 20: the setting the reference boxes were measured with


@pytest.fixture(scope="module")
def fast_detector():
    return MTCNN(min_face_size=40, device="cpu")  # the stage's default, a quarter of the pyramid


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# --------------------------------------------------------------------------------------------------
# weights


def test_weights_found_without_importing_mtcnn():
    folder = mtcnn_weights_dir()
    assert {p.name for p in folder.iterdir()} >= {"pnet.lz4", "rnet.lz4", "onet.lz4"}
    assert "mtcnn" not in sys.modules  # its __init__ would import TensorFlow


def test_keras_layout_is_converted():
    arrays = _read_weight_list(mtcnn_weights_dir() / "onet.lz4")
    net = load_keras_weights(ONet(), arrays, "onet.lz4")
    np.testing.assert_array_equal(net.conv1.weight.detach().numpy(), arrays[0].transpose(3, 2, 0, 1))  # HWIO -> OIHW
    np.testing.assert_array_equal(net.fc5.weight.detach().numpy(), arrays[12].T)  # dense (in, out) -> (out, in)
    widths = {a.shape[-1]: a for a in arrays[-6::2]}
    np.testing.assert_array_equal(net.landmarks.weight.detach().numpy(), widths[10].T)
    np.testing.assert_array_equal(net.prob.weight.detach().numpy(), widths[2].T)
    for cls, name in ((PNet, "pnet.lz4"), (RNet, "rnet.lz4")):
        load_keras_weights(cls(), _read_weight_list(mtcnn_weights_dir() / name), name)


def test_bad_weight_lists_are_rejected():
    arrays = _read_weight_list(mtcnn_weights_dir() / "rnet.lz4")
    with pytest.raises(MTCNNWeightsError, match="prob"):
        load_keras_weights(RNet(), arrays[:-2], "rnet.lz4")  # probability head missing
    with pytest.raises(MTCNNWeightsError, match="shape"):
        load_keras_weights(PNet(), arrays, "rnet.lz4")  # R-Net weights into P-Net


def test_weights_found_when_data_dir_shadows_the_package(monkeypatch, repo_root):
    """Run as ``python data/bbox.py``, data/ is first on sys.path and data/mtcnn.py is found as a
    top-level module ``mtcnn``; the weights must still come from the installed package."""
    monkeypatch.setattr(sys, "path", [str(repo_root / "data"), *sys.path])
    importlib.invalidate_caches()
    assert importlib.util.find_spec("mtcnn").origin == str(repo_root / "data" / "mtcnn.py")
    assert (mtcnn_weights_dir() / "pnet.lz4").is_file()


def test_missing_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    importlib.invalidate_caches()
    with pytest.raises(MTCNNWeightsError, match=r"pip install mtcnn==1\.0\.0"):
        mtcnn_weights_dir()


def test_missing_weights_dir_exits_2(tmp_path, samples_dir):
    root = _make_tree(tmp_path, samples_dir, {"v1": ["T1"]})
    with pytest.raises(SystemExit) as exc:
        stage.main(["--data-root", str(root), "--weights-dir", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------------------------------
# detector


def test_public_domain_portraits(detector):
    """Boxes measured for this cascade and weights (DEPENDENCIES.md), within a few pixels."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    for image, expected in ((skimage.data.astronaut(), (181, 62, 268, 172)), (hopper, (174, 120, 356, 340))):
        faces = detector.detect(image)
        assert len(faces) == 1
        face = faces[0]
        assert face.score > 0.99
        np.testing.assert_allclose((face.x1, face.y1, face.x2, face.y2), expected, atol=4)
        # eyes above nose above mouth, all inside the box; left eye left of right eye
        (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
        assert lex < nx < rex and mlx < mrx and max(ley, rey) < ny < min(mly, mry)
        assert (face.landmarks[:, 0] > face.x1).all() and (face.landmarks[:, 0] < face.x2).all()
        assert (face.landmarks[:, 1] > face.y1).all() and (face.landmarks[:, 1] < face.y2).all()


# Boxes (x1, y1, x2, y2, probability) of the reference `mtcnn` package, 1.0.0 with TensorFlow 2.21 on
# the CPU, default settings (min_face_size 20, thresholds 0.6 / 0.7 / 0.8), run once outside the
# project on RGB arrays; it rounds boxes to whole pixels.
REFERENCE_TF_BOXES = {
    "image_T1.jpg": [(113, 103, 293, 358, 0.9998)],
    "image_F1.jpg": [(198, 107, 372, 353, 0.9999)],
    "image_F2.jpg": [(141, 202, 352, 496, 0.9955)],
    "astronaut": [(182, 64, 265, 171, 0.9991)],
    "grace_hopper": [(178, 110, 351, 330, 0.9892)],
    "camera": [(197, 116, 256, 198, 0.9981)],
    "T1|F1": [(669, 110, 848, 349, 0.9999), (114, 101, 293, 362, 0.9997)],  # the two photos side by side
}


def _reference_images(samples_dir) -> dict:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    images = {name: _rgb(samples_dir / name) for name in ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg")}
    images["astronaut"] = skimage.data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    images["camera"] = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    images["T1|F1"] = np.hstack([images["image_T1.jpg"], images["image_F1.jpg"]])
    return images


def test_boxes_agree_with_the_reference_package(detector, samples_dir):
    """Same faces as the TensorFlow mtcnn package, the kept (first) face overlapping its first face.

    The boxes differ by a few pixels (IoU 0.87-0.97 here) because mtcnn 1.0.0 changed the cascade
    the original ran (mtcnn 0.1.x, whose conventions this port follows): R-Net and O-Net crops
    are cut with bilinear tf.image.crop_and_resize at fractional corners (0.1.x: cv2 INTER_AREA
    on integer 1-based boxes, zero padding), P-Net boxes are regressed before NMS and not floored,
    NMS drops a box overlapping any stronger box even a suppressed one, and O-Net's threshold is
    0.8 (0.1.x: 0.7). That is why a doubtful box can survive here and not there: on the seam between
    the two photos the same region leaves P-Net as [477, 149, 515, 187] here and [473.3, 148.8,
    511.3, 186.8] there, and R-Net (threshold 0.7) scores the two crops 0.95 and 0.48; our O-Net
    then gives it 0.68, under both O-Net thresholds, so neither cascade reports it here."""
    for name, image in _reference_images(samples_dir).items():
        faces = detector.detect(image)
        expected = REFERENCE_TF_BOXES[name]
        assert len(faces) == len(expected), (name, faces)
        kept = select_face(faces)
        assert kept is faces[0]
        # the reference's most probable face, or one within 0.001 of it (T1|F1: 0.9999 and 0.9997, a tie
        # that either cascade may order either way)
        first = [e for e in expected if e[4] >= expected[0][4] - 1e-3]
        assert max(_iou((kept.x1, kept.y1, kept.x2, kept.y2), e[:4]) for e in first) > 0.85, (name, kept)
        for face in faces:  # every face found is one the reference found
            assert max(_iou((face.x1, face.y1, face.x2, face.y2), e[:4]) for e in expected) > 0.85, (name, face)
            assert face.score > 0.98


# boxes checked by eye on the 480x640 sample photos (face outline, chin to hairline)
SAMPLE_FACES = {"image_T1.jpg": (117, 107, 288, 361), "image_F1.jpg": (188, 104, 364, 352),
                "image_F2.jpg": (130, 204, 350, 502)}


def test_face_on_each_sample_photo(fast_detector, samples_dir):
    for name, expected in SAMPLE_FACES.items():
        image = _rgb(samples_dir / name)
        face = select_face(fast_detector.detect(image))
        assert face is not None, name
        box = face.to_box()
        h, w = image.shape[:2]
        assert 0 <= box.x and 0 <= box.y and box.x + box.w <= w and box.y + box.h <= h, (name, box)
        assert 0.1 * w < box.w < 0.8 * w and 0.1 * h < box.h < 0.8 * h, (name, box)
        assert _iou((face.x1, face.y1, face.x2, face.y2), expected) > 0.6, (name, face)
        assert box.score > 0.95


def test_no_face_in_blank_or_noise(fast_detector):
    rng = np.random.default_rng(0)
    for image in (np.zeros((240, 320, 3), np.uint8), np.full((240, 320, 3), 128, np.uint8),
                  rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), np.zeros((8, 8, 3), np.uint8)):
        assert fast_detector.detect(image) == []


def test_batch_matches_single_images(fast_detector, samples_dir):
    """Mixed sizes in one batch; each image's result must not depend on its batch mates."""
    big = cv2.resize(_rgb(samples_dir / "image_T1.jpg"), (300, 400), interpolation=cv2.INTER_AREA)
    small = cv2.resize(_rgb(samples_dir / "image_F2.jpg"), (240, 320), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    batch = fast_detector.detect_batch([big, small, big, grey])
    for image, faces in zip((big, small, big, grey), batch):
        single = fast_detector.detect(image)
        assert len(single) == len(faces) >= 1
        for a, b in zip(single, faces):
            np.testing.assert_allclose((a.x1, a.y1, a.x2, a.y2, a.score), (b.x1, b.y1, b.x2, b.y2, b.score),
                                       rtol=0, atol=1e-3)


def test_select_face_keeps_the_most_probable_face_by_default():
    """The original kept the mtcnn package's first (most probable) detection; the area rule is an option."""
    marks = np.zeros((5, 2))
    small_sure = Face(0, 0, 40, 40, 0.999, marks)
    big_sure = Face(100, 100, 300, 300, 0.98, marks)
    big_doubtful = Face(0, 0, 210, 210, 0.71, marks)
    hand = Face(0, 0, 400, 400, 0.73, marks)            # a printed photo held by a hand: a big doubtful box
    assert select_face([small_sure, big_sure, big_doubtful]) is small_sure
    assert select_face([big_sure, hand]) is big_sure
    assert select_face([small_sure, big_sure, big_doubtful], "area") is big_sure
    assert select_face([big_sure, hand], "area") is hand
    assert select_face([small_sure]) is small_sure and select_face([], "area") is None
    with pytest.raises(ValueError, match="face rule"):
        select_face([small_sure], "largest")
    box = Face(-3.4, 10.6, 50.2, 80.0, 0.9, marks).to_box()
    assert (box.x, box.y, box.w, box.h) == (-3, 11, 53, 69)  # not clamped: crops keep the centre


# --------------------------------------------------------------------------------------------------
# stage


def _make_tree(tmp_path, samples_dir, videos: dict[str, list[str]], split: str = "train") -> Path:
    """``<root>/<split>_img_flod/<video>/<video>_<n>_scene.jpg`` from half-size sample photos
    (``T1``, ``F1``, ``F2``), ``noise`` (no face) and ``broken`` (a truncated JPEG)."""
    root = tmp_path / "oulu_images"
    img_root = split_dirs(root, split)["img"]
    for video, kinds in videos.items():
        (img_root / video).mkdir(parents=True, exist_ok=True)
        for n, kind in enumerate(kinds, start=1):
            if kind == "noise":
                image = np.random.default_rng(n).integers(0, 256, (320, 240, 3), dtype=np.uint8)
            else:
                sample = samples_dir / f"image_{'F2' if kind == 'broken' else kind}.jpg"
                image = cv2.resize(cv2.imread(str(sample)), (240, 320), interpolation=cv2.INTER_AREA)
            data = cv2.imencode(".jpg", image)[1].tobytes()
            if kind == "broken":
                data = data[: len(data) // 3]  # a truncated file, as a killed copy leaves
            (img_root / video / f"{video}_{n}_scene.jpg").write_bytes(data)
    return root


VIDEOS = {"1_1_01_1": ["T1", "T1"], "1_1_01_2": ["F1", "noise"], "1_1_01_4": ["F2", "broken"]}


def _outputs(root: Path, split: str = "train") -> dict[str, bytes]:
    bbox_root = split_dirs(root, split)["bbox"]
    return {p.relative_to(bbox_root).as_posix(): p.read_bytes() for p in sorted(bbox_root.rglob("*")) if p.is_file()}


def _report(path) -> set[tuple[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["item", "reason"]
    return {tuple(row) for row in rows[1:]}


def _run(root, *extra) -> tuple[int, dict | None]:
    argv = ["--data-root", str(root), "--device", "cpu", "--batch-size", "2", *extra]
    try:
        return 0, stage.main(argv)
    except SystemExit as exc:
        return exc.code, None


@pytest.fixture(scope="module")
def finished(tmp_path_factory, samples_dir):
    """One uninterrupted run of the stage: (data root, run folder)."""
    root = _make_tree(tmp_path_factory.mktemp("full"), samples_dir, VIDEOS)
    code, _ = _run(root)
    assert code == 1  # the truncated frame is unreadable: reported, the rest done
    return root, root / "logs" / "bbox_train"


def test_stage_writes_boxes_and_reports(finished):
    root, run_dir = finished
    bbox_root = split_dirs(root, "train")["bbox"]
    outputs = _outputs(root)
    assert set(outputs) == {"1_1_01_1/1_1_01_1_1_scene.dat", "1_1_01_1/1_1_01_1_2_scene.dat",
                            "1_1_01_2/1_1_01_2_1_scene.dat", "1_1_01_4/1_1_01_4_1_scene.dat", "1_1_01_2/.noface"}
    assert outputs["1_1_01_2/.noface"] == b"1_1_01_2_2_scene.jpg\n"
    for name, (x1, y1, x2, y2) in (("1_1_01_1/1_1_01_1_1_scene.dat", SAMPLE_FACES["image_T1.jpg"]),
                                   ("1_1_01_2/1_1_01_2_1_scene.dat", SAMPLE_FACES["image_F1.jpg"])):
        box = read_box(bbox_root / name)
        assert box.score > 0.95
        assert _iou((box.x, box.y, box.x + box.w, box.y + box.h), (x1 / 2, y1 / 2, x2 / 2, y2 / 2)) > 0.6
    report = _report(run_dir / "skipped.csv")
    img_root = split_dirs(root, "train")["img"]
    assert report == {(str(img_root / "1_1_01_2/1_1_01_2_2_scene.jpg"), stage.NOFACE_REASON),
                      (str(img_root / "1_1_01_4/1_1_01_4_2_scene.jpg"),
                       "not a readable image (empty, truncated or not an image)")}
    assert (run_dir / "config.json").is_file() and (run_dir / "log.txt").is_file()


def test_rerun_skips_finished_and_noface(finished, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(finished[0], root)
    before = _outputs(root)
    code, _ = _run(root, "--out-dir", str(tmp_path / "run2"))
    assert code == 1
    summary = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert summary["frames_detected"] == 1 and summary["unreadable"] == 1  # only the broken frame is retried
    assert summary["had_box"] == 4 and summary["noface_earlier"] == 1
    assert _outputs(root) == before
    reasons = dict(_report(tmp_path / "run2" / "skipped.csv"))
    assert reasons[str(split_dirs(root, "train")["img"] / "1_1_01_2/1_1_01_2_2_scene.jpg")] == stage.NOFACE_EARLIER
    code, _ = _run(root, "--out-dir", str(tmp_path / "run3"), "--retry-missing")
    summary = json.loads((tmp_path / "run3" / "summary.json").read_text())
    assert summary["frames_detected"] == 2 and summary["noface"] == 1
    assert _outputs(root) == before


def test_killed_and_rerun_equals_uninterrupted(finished, tmp_path, samples_dir):
    root = _make_tree(tmp_path, samples_dir, VIDEOS)
    assert _run(root, "--shard", "1/2", "--out-dir", str(tmp_path / "part"))[0] == 1  # videos 1 and 3 only
    bbox_root = split_dirs(root, "train")["bbox"]
    (bbox_root / "1_1_01_1" / "1_1_01_1_2_scene.dat").unlink()  # died before this frame
    stray = bbox_root / "1_1_01_1" / ".1_1_01_1_2_scene.dat.x1y2z3.tmp"  # ... while writing it
    stray.write_text("115 1")
    assert _run(root, "--out-dir", str(tmp_path / "rest"))[0] == 1
    assert not stray.exists()
    assert _outputs(root) == _outputs(finished[0])
    full_report = {item.split("train_img_flod/")[1] for item, _ in _report(finished[1] / "skipped.csv")}
    rerun_report = {item.split("train_img_flod/")[1] for item, _ in _report(tmp_path / "rest" / "skipped.csv")}
    assert rerun_report == full_report


def test_shards_are_disjoint_and_cover_all(tmp_path, samples_dir):
    videos = {f"1_{k}_01_1": ["T1"] for k in range(1, 8)}
    root = _make_tree(tmp_path, samples_dir, videos)
    seen = []
    for k in (1, 2, 3):
        plan = stage.plan_split(root, "train", (k, 3), False, SkipReport(tmp_path / "r.csv"))
        seen.append({state.video for state, _ in plan.pending})
    assert sum(len(s) for s in seen) == len(videos)
    assert set().union(*seen) == set(videos)


def test_several_splits_and_missing_tree(tmp_path, samples_dir):
    root = _make_tree(tmp_path, samples_dir, {"1_1_01_1": ["T1"]}, "train")
    _make_tree(tmp_path, samples_dir, {"1_1_21_1": ["F1"]}, "dev")
    code, summary = _run(root, "--splits", "train", "dev")
    assert code == 0 and summary["boxes"] == 2
    assert (split_dirs(root, "dev")["bbox"] / "1_1_21_1" / "1_1_21_1_1_scene.dat").is_file()
    assert (root / "logs" / "bbox_train_dev" / "summary.json").is_file()
    code, _ = _run(root, "--splits", "train", "test")  # no test_img_flod: the user must act
    assert code == 2


# --------------------------------------------------------------------------------------------------
# --max-side: full-HD frames detected shrunk, boxes in full-frame pixels


@pytest.fixture(scope="module")
def hd_frame(samples_dir) -> np.ndarray:
    """A 1920x1080 RGB frame as OULU-NPU's: the live sample (480 wide, 640 high) scaled x2, rows
    100-1179 kept, widened by replicating its edge columns (no mirrored second face), passed through
    JPEG as the stage reads its frames. The face is about 350 x 500 px."""
    big = cv2.resize(cv2.imread(str(samples_dir / "image_T1.jpg")), (960, 1280), interpolation=cv2.INTER_CUBIC)
    frame = cv2.copyMakeBorder(big[HD_OFFSET[1]:HD_OFFSET[1] + 1080], 0, 0, HD_OFFSET[0], HD_OFFSET[0],
                               cv2.BORDER_REPLICATE)
    assert frame.shape == (1080, 1920, 3)
    frame = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_COLOR)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


HD_OFFSET = (480, 100)  # columns added left (and right) of the x2 photo, rows cut off its top


@pytest.fixture(scope="module")
def hd_full_face(fast_detector, hd_frame) -> Face:
    face = select_face(fast_detector.detect(hd_frame))
    assert face is not None
    return face


def test_fit_max_side_shrinks_only_larger_images():
    image = np.zeros((333, 1000, 3), np.uint8)
    for max_side in (0, 1000, 4000):
        same, sx, sy = fit_max_side(image, max_side)
        assert same is image and (sx, sy) == (1.0, 1.0)
    small, sx, sy = fit_max_side(image, 640)
    assert small.shape == (213, 640, 3)
    assert (sx, sy) == (1000 / 640, 333 / 213)  # per axis: the rounded short side keeps its own factor
    tall, sx, sy = fit_max_side(np.zeros((1920, 1080, 3), np.uint8), 960)
    assert tall.shape == (960, 540, 3) and (sx, sy) == (2.0, 2.0)
    with pytest.raises(ValueError, match="max_side"):
        MTCNN(max_side=-1, device="cpu")


def test_max_side_box_close_to_full_resolution(hd_frame, hd_full_face):
    """Shrunk x3 to 640x360, the face (about 350 x 500 px) comes back in full-frame pixels within a few
    percent of its size of the full-resolution detection, landmarks too."""
    full = hd_full_face
    x1, y1, x2, y2 = (v * 2 for v in SAMPLE_FACES["image_T1.jpg"])
    expected = (x1 + HD_OFFSET[0], y1 - HD_OFFSET[1], x2 + HD_OFFSET[0], y2 - HD_OFFSET[1])
    assert _iou((full.x1, full.y1, full.x2, full.y2), expected) > 0.6, full
    shrunk = MTCNN(min_face_size=40, device="cpu", max_side=640)
    face = select_face(shrunk.detect(hd_frame))
    assert face is not None and face.score > 0.95
    size = max(full.width, full.height)
    assert size > 300
    np.testing.assert_allclose((face.x1, face.y1, face.x2, face.y2), (full.x1, full.y1, full.x2, full.y2),
                               rtol=0, atol=0.04 * size)
    np.testing.assert_allclose(face.landmarks, full.landmarks, rtol=0, atol=0.04 * size)
    box, ref = face.to_box(), full.to_box()
    assert abs(box.w - ref.w) <= 0.05 * ref.w and abs(box.h - ref.h) <= 0.05 * ref.h
    # the same shrink by hand: the detector's result is that detection times 3, not the shrunk pixels
    small = cv2.resize(hd_frame, (640, 360), interpolation=cv2.INTER_AREA)
    by_hand = select_face(MTCNN(min_face_size=40, device="cpu").detect(small))
    np.testing.assert_allclose((face.x1, face.y1, face.x2, face.y2),
                               np.array((by_hand.x1, by_hand.y1, by_hand.x2, by_hand.y2)) * 3, rtol=0, atol=1e-3)
    np.testing.assert_allclose(face.landmarks, by_hand.landmarks * 3, rtol=0, atol=1e-3)


def test_max_side_off_or_not_exceeded_changes_nothing(fast_detector, hd_frame, hd_full_face):
    for max_side in (0, 1920):
        faces = MTCNN(min_face_size=40, device="cpu", max_side=max_side).detect(hd_frame)
        face = select_face(faces)
        assert (face.x1, face.y1, face.x2, face.y2, face.score) == \
            (hd_full_face.x1, hd_full_face.y1, hd_full_face.x2, hd_full_face.y2, hd_full_face.score)
        np.testing.assert_array_equal(face.landmarks, hd_full_face.landmarks)


def test_stage_max_side_writes_full_frame_boxes(tmp_path, samples_dir, hd_frame, hd_full_face, finished):
    """A full-HD frame and a small one (240x320, under --max-side) in one run: the first box is in
    full-frame pixels, the second is byte for byte what the run without --max-side wrote."""
    root = _make_tree(tmp_path, samples_dir, {"1_1_01_1": ["T1"]})
    hd_dir = split_dirs(root, "train")["img"] / "1_1_02_1"
    hd_dir.mkdir()
    cv2.imwrite(str(hd_dir / "1_1_02_1_1_scene.jpg"), cv2.cvtColor(hd_frame, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 100])  # hd_frame already went through JPEG; q100 keeps it near
    code, summary = _run(root, "--max-side", "640", "--out-dir", str(tmp_path / "run"))
    assert code == 0 and summary["boxes"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_side"] == 640
    bbox_root = split_dirs(root, "train")["bbox"]
    small_name = "1_1_01_1/1_1_01_1_1_scene.dat"
    assert (bbox_root / small_name).read_bytes() == _outputs(finished[0])[small_name]
    box, ref = read_box(bbox_root / "1_1_02_1" / "1_1_02_1_1_scene.dat"), hd_full_face.to_box()
    size = max(ref.w, ref.h)
    assert np.abs(np.subtract((box.x, box.y, box.x + box.w, box.y + box.h),
                              (ref.x, ref.y, ref.x + ref.w, ref.y + ref.h))).max() <= 0.04 * size, (box, ref)


def test_stage_rejects_negative_max_side(tmp_path, samples_dir):
    root = _make_tree(tmp_path, samples_dir, {"1_1_01_1": ["T1"]})
    assert _run(root, "--max-side", "-1")[0] == 2


def test_predict_detects_with_max_side(tmp_path, hd_frame, hd_full_face):
    """predict.py's FaceCropper takes the stage's --max-side: full-frame boxes from a shrunk detection."""
    import predict
    from DUM.inference import FaceCropper

    # boxes() needs no depth maps: any truthy estimator keeps MediaPipe from loading
    cropper = FaceCropper(max_side=640, depth_estimator=object())
    assert cropper.detector.max_side == 640
    [[box]] = cropper.boxes([cv2.cvtColor(hd_frame, cv2.COLOR_RGB2BGR)])
    ref = hd_full_face.to_box()
    assert abs(box.x - ref.x) <= 0.04 * ref.w and abs(box.w - ref.w) <= 0.05 * ref.w and box.h > 300
    assert predict.build_parser().parse_args(["a.jpg", "--checkpoint", "m.pt"]).max_side == 0
    with pytest.raises(SystemExit) as exc:
        predict.main(["a.jpg", "--checkpoint", "m.pt", "--max-side", "-1", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--max-side must be 0" in (tmp_path / "log.txt").read_text()
