"""Every frame with a face box is scored; what still cannot be scored counts against the system.

Metrics on a hand-computed case with failures to acquire (NaN video scores) under both rules, the
rule checked against bob's own counts on the reference score files, the face template's depth
measured again on real faces, and single-image prediction of a face the mesh cannot find.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from data.boxes import Box, crop_face
from data.face_depth import FaceDepthEstimator
from data.mtcnn import MTCNN
from DUM import metrics as M
from DUM.denominator import FACE_TEMPLATE_MEAN_DEPTH, frame_score, template_depth_sum
from DUM.inference import FaceCropper, TorchDepthModel, score_crops
from DUM.metrics.command import main as metrics_main
from networks import build_depth_net

NAN = float("nan")


def _rows(spec):
    return [M.ScoreRow(f"v{i}", label, kind, score) for i, (label, kind, score) in enumerate(spec)]


# dev: separable, so the CDCN threshold is the lowest bona fide score 0.7 (live iff > 0.7) and bob's
# EER threshold lies in (0.3, 0.7] (bona fide iff >= t): no eval score below sits between them.
DEV = _rows([(1, "", 0.9), (1, "", 0.8), (1, "", 0.7), (0, "print", 0.1), (0, "print", 0.2), (0, "replay", 0.3)])
EVAL = _rows([
    (1, "", 0.95), (1, "", 0.85), (1, "", NAN), (1, "", 0.1),             # one FTA, one false reject
    (0, "print", 0.05), (0, "print", NAN), (0, "print", 0.06),            # one FTA
    (0, "replay", 0.15), (0, "replay", 0.95), (0, "replay", NAN), (0, "replay", 0.2),  # one accept, one FTA
    (0, "mask", NAN),                                                     # a type no video of which was scored
])


def test_fta_as_errors_in_both_rows_hand_computed():
    res = M.score_metrics(DEV, EVAL)
    assert res["fta_rule"]["rule"] == "error"
    assert res["cdcn_compatible"]["returned"]["val_threshold"] == pytest.approx(0.7)
    assert 0.3 < res["thresholds"]["eer"]["threshold"] <= 0.7
    cd, iso = res["rows"]["cdcn_compatible"], res["rows"]["iso_30107_3"]
    # live: 0.1 rejected + 1 FTA of 4; attacks: 0.95 accepted + 3 FTA (print, replay, mask) of 8
    assert cd["BPCER"] == pytest.approx(2 / 4) and cd["APCER"] == pytest.approx(4 / 8)
    assert cd["ACER"] == pytest.approx((2 / 4 + 4 / 8) / 2) and cd["ACC"] == pytest.approx(1 - 6 / 12)
    assert cd["APCER_per_attack_type"] == pytest.approx({"print": 1 / 3, "replay": 2 / 4, "mask": 1.0})
    assert iso["APCER_per_attack_type"] == pytest.approx({"print": 1 / 3, "replay": 2 / 4, "mask": 1.0})
    assert iso["APCER_max"] == 1.0 and iso["BPCER"] == pytest.approx(2 / 4)
    assert iso["ACER"] == pytest.approx((1.0 + 2 / 4) / 2) and iso["APCER_pooled"] == pytest.approx(4 / 8)
    assert iso["APNRR_eval"] == pytest.approx(3 / 8) and iso["BPNRR_eval"] == pytest.approx(1 / 4)
    assert iso["FTA_eval"] == pytest.approx(4 / 12)
    # the bob / original blocks still leave the NaN rows out
    assert res["cdcn_compatible"]["returned"]["test_APCER"] == pytest.approx(1 / 5)
    assert res["eval_at_dev_eer_threshold"]["apcer_max"] == pytest.approx(1 / 3)


def test_fta_drop_rule_leaves_them_out():
    res = M.score_metrics(DEV, EVAL, fta_rule="drop")
    cd, iso = res["rows"]["cdcn_compatible"], res["rows"]["iso_30107_3"]
    assert cd["APCER"] == pytest.approx(1 / 5) and cd["BPCER"] == pytest.approx(1 / 3)
    assert iso["APCER_per_attack_type"] == pytest.approx({"print": 0.0, "replay": 1 / 3})
    assert iso["BPCER"] == pytest.approx(1 / 3) and iso["APNRR_eval"] == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="fta_rule"):
        M.score_metrics(DEV, EVAL, fta_rule="ignore")


def test_without_fta_both_rules_agree():
    finite = [r for r in EVAL if not math.isnan(r.score)]
    a, b = M.score_metrics(DEV, finite), M.score_metrics(DEV, finite, fta_rule="drop")
    assert a["rows"] == b["rows"]


def test_dev_selection_counts_unscored_dev_videos():
    clean = M.dev_metrics(DEV)
    worse = M.dev_metrics(DEV + _rows([(0, "print", NAN)]))
    # the original's rule "live iff > t" rejects the lowest dev bona fide score, t itself
    assert clean["cdcn_APCER"] == 0.0 and clean["cdcn_BPCER"] == pytest.approx(1 / 3)
    assert worse["cdcn_APCER"] == pytest.approx(1 / 4) and worse["cdcn_BPCER"] == pytest.approx(1 / 3)
    drop = M.dev_metrics(DEV + _rows([(0, "print", NAN)]), fta_rule="drop")
    assert drop["cdcn_ACER"] == clean["cdcn_ACER"]


def test_fta_rule_on_the_reference_files_matches_bobs_counts(reference_dir, tmp_path, capsys):
    """Folded rates rebuilt from bob's own error counts and NaN counts (reference score files)."""
    ref = reference_dir / "metrics"
    expected = json.loads((ref / "expected.json").read_text())["experiments"]["bob-1"]
    res = metrics_main(["--format", "bob", "--dev", str(ref / "dev-1.txt"), "--eval", str(ref / "test-1.txt"),
                        "--no-plots"])
    printed = capsys.readouterr().out
    e, c = expected["eval_at_dev_eer_threshold"], expected["eval_counts"]
    n_att, n_bf = c["n_attack"] + c["n_nan_attack"], c["n_bona_fide"] + c["n_nan_bona_fide"]
    apcer = (e["counts"]["false_accepts_pooled"] + c["n_nan_attack"]) / n_att
    bpcer = (e["counts"]["false_rejects"] + c["n_nan_bona_fide"]) / n_bf
    iso = res["rows"]["iso_30107_3"]
    assert c["n_nan_attack"] > 0 and c["n_nan_bona_fide"] > 0
    assert iso["APCER_max"] == pytest.approx(apcer, abs=1e-12) and iso["BPCER"] == pytest.approx(bpcer, abs=1e-12)
    t = expected["cdcn_compatible"]["intermediate"]["test_counts"]
    cd = res["rows"]["cdcn_compatible"]
    assert cd["APCER"] == pytest.approx((t["type2"] + c["n_nan_attack"]) / n_att, abs=1e-12)
    assert cd["BPCER"] == pytest.approx((t["type1"] + c["n_nan_bona_fide"]) / n_bf, abs=1e-12)
    assert "failures to acquire as errors (the reported row)" in printed and "rule 'error'" in printed


# --------------------------------------------------------------------------------------------------
# the fallback denominator


def test_frame_score_uses_the_template_only_without_a_map():
    assert frame_score(10.0, 5.0, 8) == (2.0, False)
    score, template = frame_score(10.0, 0.0, 8, 4)
    assert template and score == pytest.approx(10.0 / (FACE_TEMPLATE_MEAN_DEPTH * 32))
    assert frame_score(float("nan"), 5.0, 8) == (None, False)
    assert template_depth_sum(32) == FACE_TEMPLATE_MEAN_DEPTH * 1024


def _real_faces(samples_dir):
    import matplotlib.cbook
    import skimage.data

    faces = [cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR),
             cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))]
    faces += [cv2.imread(str(samples_dir / f"image_{k}.jpg")) for k in ("T1", "F1", "F2")]
    return faces


def test_face_template_mean_depth_measured_on_real_faces(samples_dir):
    """The constant is what our own pipeline gives (MTCNN's first box, mesh label, 1.3 crop, 32 px)."""
    detector = MTCNN(min_face_size=40, device="cpu")
    means = []
    with FaceDepthEstimator() as estimator:
        for bgr in _real_faces(samples_dir):
            box = detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))[0].to_box()
            depth = estimator.estimate(bgr, box)
            means.append(float(crop_face(depth, box, scale=1.3, size=32).mean()))
    assert np.mean(means) == pytest.approx(FACE_TEMPLATE_MEAN_DEPTH, rel=0.03)
    assert max(abs(m / FACE_TEMPLATE_MEAN_DEPTH - 1) for m in means) < 0.1


def test_predict_scores_a_face_without_mesh_with_the_template(samples_dir):
    """A box the mesh finds no face in (blank wall) is still scored, with a note; a face is scored
    with its own map."""
    frame = cv2.resize(cv2.imread(str(samples_dir / "image_T1.jpg")), (320, 240))
    frame[:, 200:] = 128                                          # a blank region right of the face
    cropper = FaceCropper(image_size=64, map_size=8, detector=MTCNN(min_face_size=40, device="cpu"))
    face_box = cropper.boxes([frame])[0][0]
    crops = [cropper.crop(frame, face_box), cropper.crop(frame, Box(230, 80, 60, 70), face=1)]
    assert crops[0].depth is not None and not crops[0].note
    assert crops[1].depth is None and not crops[1].problem and "face template" in crops[1].note
    torch.manual_seed(0)
    net = build_depth_net("cdcn_u", width=0.25, image_size=64).eval()
    model = TorchDepthModel(net, torch.device("cpu"), source="tiny", image_size=64, map_size=8, arch={})
    scored = score_crops(model, crops, keep_maps=True)
    assert all(s.score is not None and math.isfinite(s.score) for s in scored)
    assert scored[1].score == pytest.approx(float(scored[1].mu.sum()) / template_depth_sum(8), rel=1e-5)
