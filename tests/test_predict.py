"""predict.py and DUM/inference.py on the real sample photos with a CDCN+DUM trained in the test."""
from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest
import torch

import predict
import predict_testdata as ptd
from utils.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, samples_dir):
    return ptd.tiny_model(tmp_path_factory.mktemp("tiny_model"), samples_dir)


@pytest.fixture(scope="module")
def extras(tmp_path_factory, samples_dir):
    """A folder with an unreadable .jpg, a face-less image (one level down) and a 5-frame video of T1."""
    root = tmp_path_factory.mktemp("extras")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 10)
    (root / "sub").mkdir()
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (150, 1))
    cv2.imwrite(str(root / "sub" / "noface.png"), cv2.merge([ramp, ramp, ramp]))
    photo = cv2.resize(cv2.imread(str(samples_dir / "image_T1.jpg")), (240, 320), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (240, 320))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.roll(photo, 2 * i, axis=1))  # the face drifts right by 2 px a frame
    writer.release()
    return root


def run_predict(tmp_path, checkpoint, inputs, *extra):
    out_dir = tmp_path / "run"
    return predict.main(["--checkpoint", str(checkpoint), *map(str, inputs), "--out-dir", str(out_dir),
                         "--threads", "1", "--device", "cpu", *map(str, extra)]), out_dir


def face_rows(summary):
    return {r.file.rsplit("/", 1)[-1]: r for r in summary["rows"] if r.kind == "face" and not r.frame}


def test_photos_folders_video_and_failures(tmp_path, samples_dir, tiny, extras, capsys):
    photos = [samples_dir / name for name in ptd.SAMPLES]
    depth_dir = tmp_path / "depth"
    summary, out_dir = run_predict(tmp_path, tiny["checkpoint"], [*photos, extras], "--batch-size", "4",
                                   "--every", "2", "--max-frames", "2", "--save-depth", depth_dir,
                                   "--out", tmp_path / "all.csv")
    printed = capsys.readouterr().out
    assert f"from {ptd.THRESHOLD_SOURCE}" in printed and summary["threshold"] == pytest.approx(tiny["threshold"])

    # every photo: a face, a box, the score the library gave these faces, the expected decision
    faces = face_rows(summary)
    for name, decision in ptd.SAMPLES.items():
        row = faces[name]
        assert row.status == "scored" and row.decision == decision, row
        assert float(row.score) == pytest.approx(tiny["scores"][name], rel=1e-5)
        x, y, w, h = map(int, row.box.split())
        assert w > 80 and h > 80 and 0.9 < float(row.detector_score) <= 1.0
        assert f"{name} face 0: box {row.box}" in printed and f"-> {decision}" in printed
        png = cv2.imread(row.depth_png)
        assert png is not None and png.shape[1] > 2 * png.shape[0] and png.std() > 0  # crop | mu | sigma panel
    assert len(list(depth_dir.glob("*.png"))) == 5  # 3 photos + 2 video frames

    # the video: frames 1 and 3 (--every 2 --max-frames 2) and the mean of their scores
    frames = [r for r in summary["rows"] if r.kind == "face" and r.frame]
    assert [r.frame for r in frames] == ["1", "3"] and all(r.status == "scored" for r in frames)
    (video,) = [r for r in summary["rows"] if r.kind == "video"]
    mean = np.mean([float(r.score) for r in frames])
    assert float(video.score) == pytest.approx(mean) and video.frames_scored == "2" and video.frames_read == "2"
    assert video.decision == ("live" if mean > tiny["threshold"] else "spoof")
    assert "VIDEO " in printed and "clip.avi" in printed

    # unreadable file and face-less image: reported in the output, the CSV and skipped.csv, then skipped
    status = {r.file.rsplit("/", 1)[-1]: r.status for r in summary["rows"] if r.kind == "skip"}
    assert status == {"broken.jpg": "unreadable", "noface.png": "no_face"}
    assert "broken.jpg: SKIPPED unreadable" in printed and "noface.png: SKIPPED no_face" in printed
    skipped = (out_dir / "skipped.csv").read_text()
    assert "broken.jpg" in skipped and "noface.png" in skipped
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert len(rows) == len(summary["rows"]) == 3 + 2 + 1 + 2
    assert (out_dir / "config.json").is_file() and (out_dir / "log.txt").is_file()


def test_threshold_is_required_and_can_be_overridden(tmp_path, samples_dir, tiny, capsys):
    state = load_checkpoint(tiny["checkpoint"])
    no_threshold = save_checkpoint(dict(state, threshold=None, threshold_source=None), tmp_path / "nothr.pt")
    with pytest.raises(SystemExit) as err:
        run_predict(tmp_path, no_threshold, [samples_dir / "image_F1.jpg"])
    assert err.value.code == 2
    # the released-checkpoint layout: a bare module.-prefixed state_dict, architecture from flags
    plain = tmp_path / "CDCN_U_P1.pkl"
    torch.save({f"module.{k}": v for k, v in state["model"].items()}, plain)
    capsys.readouterr()
    summary, _ = run_predict(tmp_path, plain, [samples_dir / "image_F1.jpg"], "--threshold", "-1",
                             "--width", "0.25", "--image-size", "64")
    assert "from --threshold on the command line" in capsys.readouterr().out
    row = face_rows(summary)["image_F1.jpg"]
    assert row.decision == "live"  # any score beats -1
    assert float(row.score) == pytest.approx(tiny["scores"]["image_F1.jpg"], rel=1e-5)


def test_exit_status(tmp_path, tiny, extras):
    with pytest.raises(SystemExit) as err:
        run_predict(tmp_path, tiny["checkpoint"], [tmp_path / "no_such.jpg"])
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        run_predict(tmp_path, tiny["checkpoint"], [extras / "sub" / "noface.png", extras / "broken.jpg"])
    assert err.value.code == 1


def test_scores_match_the_dum_data_pipeline(tmp_path, samples_dir, tiny):
    """Frames through the real stages (bbox.py, depth.py, crop_dataset.py) scored by DUM/test.py's
    evaluate() give the scores predict.py gives the same photos."""
    from data import bbox, depth
    from data.frames import frame_name
    from data.protocols import parse_protocol_text
    from DUM.dataset import DepthEvalDataset
    from DUM.engine import evaluate
    from DUM.inference import load_torch_model
    from DUM.make_dataset import crop_dataset

    data_root, crop_root = tmp_path / "oulu_images", tmp_path / "oulu_images_crop"
    videos = {"1_1_01_1": "image_T1.jpg", "1_1_01_2": "image_F1.jpg", "1_1_01_4": "image_F2.jpg"}
    for video, name in videos.items():
        (data_root / "test_img_flod" / video).mkdir(parents=True)
        shutil.copy(samples_dir / name, data_root / "test_img_flod" / video / frame_name(video, 1))
    with ptd.torch_threads(1):
        bbox.main(["--data-root", str(data_root), "--split", "test"])
        depth.main(["--data-root", str(data_root), "--split", "test"])
        crop_dataset.main(["--data-root", str(data_root), "--crop-root", str(crop_root), "--split", "test",
                           "--image-size", "64", "--map-size", "8", "--workers", "1"])
        items = parse_protocol_text("+1,1_1_01_1\n-1,1_1_01_2\n-2,1_1_01_4\n", "test protocol")
        model = load_torch_model(tiny["checkpoint"])
        result = evaluate(model.net, DepthEvalDataset(items, crop_root, "test", 64, 8), torch.device("cpu"),
                          frame_batch=4, workers=0)
    scores = {video: score for video, _, score in result.frames}
    assert set(scores) == set(videos)
    for video, name in videos.items():
        assert scores[video] == pytest.approx(tiny["scores"][name], rel=1e-5)


def test_face_without_depth_map_is_scored_with_the_template(tiny):
    """A box where the mesh finds no face is still scored, as DUM/test.py scores such a frame: sum(mu)
    over the face template's depth sum (DUM/denominator.py), and the row says so."""
    from data.boxes import Box
    from DUM.denominator import template_depth_sum
    from data.media import Frame
    from DUM.inference import FaceCropper, load_torch_model, score_crops

    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    image = cv2.merge([ramp, ramp[:, ::-1], ramp])
    crop = FaceCropper(64, 8).crop(image, Box(100, 60, 90, 110, 0.9))
    assert crop.image.shape == (64, 64, 3) and crop.depth is None and not crop.problem
    assert "no face mesh" in crop.note and "face template" in crop.note
    (result,) = score_crops(load_torch_model(tiny["checkpoint"]), [crop], keep_maps=True)
    assert result.score == pytest.approx(float(result.mu.sum()) / template_depth_sum(8), rel=1e-5)
    row = predict.face_row(Frame("x.jpg", None, image), crop, result, tiny["threshold"], None)
    assert (row.status, row.box) == ("scored", "100 60 90 110") and row.decision in ("live", "spoof")
    assert "face template" in row.detail
