"""Depth labels (data/depth.py): the z-buffer, the mesh topology, face-shaped maps on real photos,
and the stage's bad-input handling, resume and PRNet import."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data.boxes import Box, write_box
from data.depth import main
from data.face_depth import (CHEEKS, MESH_VERTICES, NOSE_TIP, FaceDepthEstimator, depth_to_uint8, landmarks_to_depth,
                             mesh_topology, normalize_depth, render_depth)


# ---------------------------------------------------------------------------------------------
# render_depth
# ---------------------------------------------------------------------------------------------

def reference_render(vertices, triangles, height, width):
    """Slow, obvious z-buffer: every pixel of every triangle, barycentric test and interpolation."""
    out = np.full((height, width), -np.inf)
    for tri in triangles:
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = (vertices[i] for i in tri)
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-12:
            continue
        for r in range(height):
            for c in range(width):
                l0 = ((y1 - y2) * (c - x2) + (x2 - x1) * (r - y2)) / den
                l1 = ((y2 - y0) * (c - x2) + (x0 - x2) * (r - y2)) / den
                l2 = 1 - l0 - l1
                if min(l0, l1, l2) >= -1e-9:
                    out[r, c] = max(out[r, c], l0 * z0 + l1 * z1 + l2 * z2)
    out[np.isneginf(out)] = 0
    return out


def test_render_overlapping_triangles_nearer_wins():
    verts = np.array([[0, 0, 1], [8, 0, 1], [0, 8, 1],          # far triangle, depth 1
                      [2, 2, 2], [9, 2, 2], [2, 9, 2]], float)  # near triangle, depth 2
    for tris in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):   # drawing order must not matter
        d = render_depth(verts, np.array(tris), 12, 12)
        assert d.dtype == np.float32 and d.shape == (12, 12)
        assert d[0, 0] == 1 and d[0, 8] == 1 and d[8, 0] == 1    # corners of the far one, edges included
        assert d[3, 3] == 2 and d[2, 2] == 2 and d[9, 2] == 2    # overlap and corners of the near one
        assert d[1, 1] == 1 and d[6, 1] == 1                     # far only
        assert d[11, 11] == 0 and d[0, 9] == 0 and d[10, 10] == 0
    assert render_depth(verts, np.array([[0, 1, 2]]), 12, 12, background=np.nan)[11, 11] != \
        render_depth(verts, np.array([[0, 1, 2]]), 12, 12, background=np.nan)[11, 11]   # nan background


def test_render_pyramid_exact_values():
    # square base at depth 0, apex (5, 5) at depth 1: depth = 1 - chebyshev distance / 5
    verts = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [5, 5, 1]], float)
    tris = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    d = render_depth(verts, tris, 13, 14)
    rr, cc = np.mgrid[0:11, 0:11]
    expected = 1 - np.maximum(abs(rr - 5), abs(cc - 5)) / 5.0
    np.testing.assert_allclose(d[:11, :11], expected, atol=1e-6)
    assert not d[11:].any() and not d[:, 11:].any()
    np.testing.assert_allclose(d, reference_render(verts, tris, 13, 14), atol=1e-6)


def test_render_matches_reference_loop_on_random_mesh():
    rng = np.random.default_rng(0)
    verts = np.column_stack([rng.uniform(-5, 35, 40), rng.uniform(-5, 28, 40), rng.uniform(-1, 1, 40)])
    tris = rng.integers(0, 40, (30, 3))
    tris = np.vstack([tris, [[0, 0, 1]]])            # a degenerate triangle is ignored, not a crash
    d = render_depth(verts, tris, 24, 30)
    ref = reference_render(verts, tris, 24, 30)
    assert (ref != 0).sum() > 100                    # the mesh really covers part of the frame
    np.testing.assert_allclose(d, ref, atol=1e-6)
    assert not render_depth(verts, np.zeros((0, 3), int), 5, 6).any()


def test_render_shared_edge_leaves_no_gap():
    # a fan of thin triangles around a centre: every pixel of the disc lies in some triangle
    n, r = 37, 20.0
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.123
    rim = np.column_stack([25.3 + r * np.cos(ang), 24.7 + r * np.sin(ang), np.zeros(n)])
    verts = np.vstack([[25.3, 24.7, 1.0], rim])
    tris = np.array([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)])
    d = render_depth(verts, tris, 50, 50, background=-1)
    rr, cc = np.mgrid[0:50, 0:50]
    inner = np.hypot(rr - 24.7, cc - 25.3) < r * np.cos(np.pi / n) - 0.01   # inside the polygon
    assert (d[inner] >= 0).all()


def test_normalize_and_uint8():
    np.testing.assert_allclose(normalize_depth(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    assert not normalize_depth(np.array([1.0, 1.0])).any()
    u = depth_to_uint8(np.array([[0.0, 0.5, 1.0, 1.5, -0.2, 2.4 / 255]], np.float32))
    assert u.dtype == np.uint8 and u.tolist() == [[0, 128, 255, 255, 0, 2]]


def test_mesh_topology():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    topo = mesh_topology()
    assert topo.triangles.shape == (852, 3) and topo.triangles.max() < MESH_VERTICES
    assert sorted(len(h) for h in topo.holes) == [16, 16, 20]        # two eyes, the mouth
    assert len(topo.fill_triangles) == 52
    ordered = {tuple(sorted((int(a), int(b)))) for a, b in zip(topo.oval, np.roll(topo.oval, -1))}
    assert ordered == {tuple(sorted(e)) for e in FACEMESH_FACE_OVAL}  # the oval, in order
    edges = {}
    for t in topo.triangles:
        for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])):
            edges[tuple(sorted(e))] = edges.get(tuple(sorted(e)), 0) + 1
    assert max(edges.values()) == 2


def test_import_does_not_load_mediapipe(repo_root):
    code = ("import sys, data.face_depth, data.depth; "
            "assert 'mediapipe' not in sys.modules, 'mediapipe imported eagerly'")
    subprocess.run([sys.executable, "-c", code], cwd=repo_root, check=True)


# ---------------------------------------------------------------------------------------------
# Real faces
# ---------------------------------------------------------------------------------------------

def _photos(samples_dir):
    import matplotlib.cbook
    import skimage.data

    photos = {p.stem: cv2.imread(str(p)) for p in sorted(samples_dir.glob("*.jpg"))}
    assert len(photos) == 3
    photos["astronaut"] = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return photos


@pytest.fixture(scope="module")
def photos(samples_dir):
    return _photos(samples_dir)


@pytest.fixture(scope="module")
def estimator():
    with FaceDepthEstimator() as est:
        yield est


def _at(depth, pts, i, j=None, t=1.0):
    """Depth at landmark i, or at the point a fraction t of the way from landmark i to j."""
    p = pts[i, :2] if j is None else pts[i, :2] + t * (pts[j, :2] - pts[i, :2])
    c, r = int(round(p[0])), int(round(p[1]))
    return int(depth[r, c])


def _face_box(pts) -> Box:
    x1, y1 = pts[:, :2].min(0)
    x2, y2 = pts[:, :2].max(0)
    return Box(int(x1), int(y1), int(x2 - x1), int(y2 - y1))


@pytest.mark.parametrize("name", ["image_T1", "image_F1", "image_F2", "astronaut", "grace_hopper"])
def test_depth_map_is_face_shaped(photos, estimator, name):
    image = photos[name]
    h, w = image.shape[:2]
    pts = estimator.landmarks(image)
    assert pts is not None and pts.shape == (468, 3)
    depth = estimator.estimate(image)
    assert depth.dtype == np.uint8 and depth.shape == (h, w)
    # background: corners and everything well outside the face's landmarks
    box = _face_box(pts)
    margin = int(0.15 * max(box.w, box.h))
    outside = np.ones((h, w), bool)
    outside[max(0, box.y - margin):box.y + box.h + margin, max(0, box.x - margin):box.x + box.w + margin] = False
    assert not depth[outside].any()
    assert not depth[[0, 0, -1, -1], [0, -1, 0, -1]].any()
    # the face: a sizeable area, nose tip near the top of the range and nearer than the cheeks
    face = depth > 0
    assert 0.5 * box.w * box.h < face.sum() < 1.2 * box.w * box.h
    nose = max(_at(depth, pts, NOSE_TIP), _at(depth, pts, 4))
    assert nose >= 235
    for cheek in CHEEKS:
        assert nose >= _at(depth, pts, NOSE_TIP, cheek, 0.5) + 15
        assert nose >= _at(depth, pts, NOSE_TIP, cheek, 0.85) + 40
    # no holes at the eyes and mouth: the whole region between the eye corners is face
    for a, b in ((33, 133), (362, 263), (78, 308)):
        assert _at(depth, pts, a, b, 0.5) > 0
    # the box route (the stage's default) gives the same map
    boxed = estimator.estimate(image, box)
    assert boxed is not None
    both = (boxed > 0) & face
    assert both.sum() > 0.95 * face.sum()
    assert np.abs(boxed[both].astype(int) - depth[both].astype(int)).mean() < 12   # MediaPipe z varies with framing


def test_tight_face_crop_and_grey_input(photos, estimator):
    from data.boxes import crop_face

    image = photos["image_T1"]
    box = _face_box(estimator.landmarks(image))
    for scale in (1.0, 0.7):     # a generator-like 256x256 face, and one cut tighter than the face
        crop = crop_face(image, box, scale, 256)
        depth = estimator.estimate(crop)
        assert depth is not None and depth.shape == (256, 256)
        assert (depth > 0).mean() > 0.6 and depth.max() >= 235
    # the 0.7 crop is found only because the image is searched again with a margin around it
    with FaceDepthEstimator(pad=0.0) as no_margin:
        assert no_margin.estimate(crop) is None
    grey = estimator.estimate(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert grey is not None and grey.shape == image.shape[:2]


def test_tracking_mode_follows_a_moving_face(photos):
    image = photos["image_T1"]
    with FaceDepthEstimator() as static, FaceDepthEstimator(tracking=True) as tracker:
        for dx in (0, 3, 6, 9):
            frame = np.roll(image, dx, axis=1)
            a, b = static.estimate(frame), tracker.estimate(frame)
            assert a is not None and b is not None
            both = (a > 0) & (b > 0)
            assert both.sum() > 0.9 * (a > 0).sum()
            assert np.abs(a[both].astype(int) - b[both].astype(int)).mean() < 8


def test_no_face_returns_none(estimator):
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert estimator.estimate(noise) is None
    assert estimator.estimate(noise, Box(100, 60, 80, 100)) is None
    assert estimator.estimate(np.zeros((64, 64, 3), np.uint8)) is None


def test_landmarks_to_depth_without_fill_has_holes(photos, estimator):
    image = photos["astronaut"]
    pts = estimator.landmarks(image)
    h, w = image.shape[:2]
    open_map = landmarks_to_depth(pts, h, w, fill_holes=False)
    closed = landmarks_to_depth(pts, h, w, fill_holes=True)
    assert closed.dtype == np.float32 and 0 <= closed.min() and closed.max() <= 1
    assert (closed > 0).sum() > (open_map > 0).sum()       # the mouth and eye openings got filled
    assert np.array_equal(closed[open_map > 0], open_map[open_map > 0])


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------

def _small(image, width=240):
    return cv2.resize(image, (width, int(round(image.shape[0] * width / image.shape[1]))), interpolation=cv2.INTER_AREA)


@pytest.fixture
def data_root(tmp_path, photos, estimator):
    """Two videos: one of real faces (one with its MTCNN-style box, one with a malformed box file),
    one with a face, a noise frame and a file that is not an image."""
    root = tmp_path / "oulu_images"
    img, bbox = root / "train_img_flod", root / "train_bbox_flod"
    frames = {"1_1_01_1": [_small(photos["image_T1"]), _small(photos["image_F1"])],
              "1_1_01_2": [_small(photos["image_F2"]), None,
                           np.random.default_rng(1).integers(0, 256, (180, 240, 3), np.uint8)]}
    for video, images in frames.items():
        (img / video).mkdir(parents=True)
        for n, image in enumerate(images, start=1):
            path = img / video / f"{video}_{n}_scene.jpg"
            if image is None:
                path.write_bytes(b"\xff\xd8 truncated")
            else:
                cv2.imwrite(str(path), image)
    pts = estimator.landmarks(cv2.imread(str(img / "1_1_01_1" / "1_1_01_1_1_scene.jpg")))
    write_box(bbox / "1_1_01_1" / "1_1_01_1_1_scene.dat", _face_box(pts))
    (bbox / "1_1_01_1").mkdir(parents=True, exist_ok=True)
    (bbox / "1_1_01_1" / "1_1_01_1_2_scene.dat").write_text("12 abc\n")
    return root


def _maps(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "train_depth_flod").rglob("*.jpg"))}


def _report(path):
    with open(path, newline="") as f:
        return {row["item"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(f)}


def test_stage_writes_maps_reports_and_resumes(data_root, tmp_path):
    out = tmp_path / "run"
    result = main(["--data-root", str(data_root), "--split", "train", "--out-dir", str(out)])
    maps = _maps(data_root)
    assert sorted(maps) == ["train_depth_flod/1_1_01_1/1_1_01_1_1_depth1D.jpg",
                            "train_depth_flod/1_1_01_1/1_1_01_1_2_depth1D.jpg",
                            "train_depth_flod/1_1_01_2/1_1_01_2_1_depth1D.jpg"]
    for rel in maps:
        depth = cv2.imread(str(data_root / rel), cv2.IMREAD_UNCHANGED)
        frame = cv2.imread(str(data_root / rel.replace("depth_flod", "img_flod").replace("depth1D", "scene")))
        assert depth.ndim == 2 and depth.shape == frame.shape[:2] and depth.max() > 200 and depth[0, 0] < 5
    assert result["written"] == 3 and result["no_face"] == 1 and result["unreadable"] == 1 and result["bad_box"] == 1
    report = _report(out / "skipped.csv")
    assert set(report) == {"1_1_01_2_2_scene.jpg", "1_1_01_2_3_scene.jpg"}
    assert "not a readable image" in report["1_1_01_2_2_scene.jpg"]
    assert "no face mesh" in report["1_1_01_2_3_scene.jpg"]
    assert json.loads((out / "config.json").read_text())["split"] == "train"
    assert "summary" in (out / "log.txt").read_text()

    # rerun: nothing rewritten, same bytes
    again = main(["--data-root", str(data_root), "--out-dir", str(out)])
    assert again["written"] == 0 and again["existing"] == 3 and _maps(data_root) == maps

    # a run killed half way (one map missing, a temp file left by the atomic writer) ends the same
    (data_root / "train_depth_flod/1_1_01_1/1_1_01_1_2_depth1D.jpg").unlink()
    (data_root / "train_depth_flod/1_1_01_2/.1_1_01_2_1_depth1D.jpg.abc.tmp").write_bytes(b"half")
    resumed = main(["--data-root", str(data_root), "--out-dir", str(out)])
    assert resumed["written"] == 1 and _maps(data_root) == maps


def test_stage_shards_split_the_videos(data_root, tmp_path):
    first = main(["--data-root", str(data_root), "--shard", "1/2", "--no-use-boxes", "--out-dir", str(tmp_path / "a")])
    assert first["videos"] == 1 and first["written"] == 2 and first["no_box"] == 0
    assert {p.split("/")[1] for p in _maps(data_root)} == {"1_1_01_1"}
    second = main(["--data-root", str(data_root), "--shard", "2/2", "--out-dir", str(tmp_path / "b")])
    assert second["videos"] == 1 and second["written"] == 1
    assert len(_maps(data_root)) == 3


def test_stage_tracking_mode_resume_gives_same_maps(data_root, tmp_path):
    main(["--data-root", str(data_root), "--tracking", "--out-dir", str(tmp_path / "a")])
    maps = _maps(data_root)
    assert len(maps) == 3
    (data_root / "train_depth_flod/1_1_01_1/1_1_01_1_2_depth1D.jpg").unlink()
    resumed = main(["--data-root", str(data_root), "--tracking", "--out-dir", str(tmp_path / "b")])
    assert resumed["written"] == 1 and _maps(data_root) == maps


def test_stage_bad_inputs_exit_nonzero(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--data-root", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "r1")])
    assert err.value.code == 2
    # every frame without a face: nothing usable came out, the user must look
    video = tmp_path / "noise" / "train_img_flod" / "v1"
    video.mkdir(parents=True)
    cv2.imwrite(str(video / "v1_1_scene.jpg"), np.random.default_rng(2).integers(0, 256, (120, 160, 3), np.uint8))
    with pytest.raises(SystemExit) as err:
        main(["--data-root", str(tmp_path / "noise"), "--out-dir", str(tmp_path / "r2")])
    assert err.value.code == 2
    assert "v1_1_scene.jpg" in (tmp_path / "r2" / "skipped.csv").read_text()


def test_import_prnet_validates_maps(data_root, tmp_path):
    src = tmp_path / "prnet"
    (src / "1_1_01_1").mkdir(parents=True)
    h, w = cv2.imread(str(data_root / "train_img_flod/1_1_01_1/1_1_01_1_1_scene.jpg")).shape[:2]
    good = np.zeros((h, w), np.uint8)
    good[40:120, 60:160] = 200
    cv2.imwrite(str(src / "1_1_01_1" / "1_1_01_1_1_depth1D.jpg"), good)                    # good, grey
    cv2.imwrite(str(src / "1_1_01_1_2_depth1D.jpg"), cv2.cvtColor(good, cv2.COLOR_GRAY2BGR))  # flat, 3 grey channels
    cv2.imwrite(str(src / "1_1_01_2_1_depth1D.jpg"), cv2.resize(good, (w // 2, h // 2)))      # wrong size
    colour = np.zeros((h, w, 3), np.uint8)
    colour[..., 2] = 255
    cv2.imwrite(str(src / "1_1_01_2_3_depth1D.jpg"), colour)                                   # not grey
    extra = data_root / "train_img_flod/1_1_01_2/1_1_01_2_5_scene.jpg"
    extra.write_bytes((data_root / "train_img_flod/1_1_01_2/1_1_01_2_3_scene.jpg").read_bytes())
    cv2.imwrite(str(src / "1_1_01_2_5_depth1D.jpg"), np.zeros((180, 240), np.uint8))           # all black
    (src / "1_1_01_2_2_depth1D.jpg").write_bytes(b"not a jpeg")                               # frame unreadable
    (src / "9_9_99_9_1_depth1D.jpg").write_bytes(b"")                                         # no such video
    extra.with_name("1_1_01_2_6_scene.jpg").write_bytes(extra.read_bytes())
    (src / "1_1_01_2_6_depth1D.jpg").write_bytes(b"\xff\xd8\xff truncated")                    # corrupt map
    out = tmp_path / "run"
    result = main(["--data-root", str(data_root), "--import-prnet", str(src), "--out-dir", str(out)])
    assert result["imported"] == 2 and result["bad"] == 6
    maps = _maps(data_root)
    first = "train_depth_flod/1_1_01_1/1_1_01_1_1_depth1D.jpg"
    assert maps[first] == (src / "1_1_01_1" / "1_1_01_1_1_depth1D.jpg").read_bytes()   # copied byte for byte
    flat = cv2.imread(str(data_root / "train_depth_flod/1_1_01_1/1_1_01_1_2_depth1D.jpg"), cv2.IMREAD_UNCHANGED)
    assert flat.ndim == 2 and flat.shape == (h, w)
    report = _report(out / "skipped.csv")
    assert "differs from its frame" in report["1_1_01_2_1_depth1D.jpg"]
    assert "not a grey map" in report["1_1_01_2_3_depth1D.jpg"]
    assert "all black" in report["1_1_01_2_5_depth1D.jpg"]
    assert "no readable frame" in report["1_1_01_2_2_depth1D.jpg"]
    assert "no frame folder" in report["9_9_99_9_1_depth1D.jpg"]
    assert "not a readable image" in report["1_1_01_2_6_depth1D.jpg"]
    again = main(["--data-root", str(data_root), "--import-prnet", str(src), "--out-dir", str(out)])
    assert again["imported"] == 0 and again["existing"] == 2
    # the mesh stage then fills only the frames PRNet did not cover
    filled = main(["--data-root", str(data_root), "--out-dir", str(tmp_path / "fill")])
    assert filled["existing"] == 2 and filled["written"] == 1
    assert _maps(data_root)[first] == maps[first]
    with pytest.raises(SystemExit):
        main(["--data-root", str(data_root), "--import-prnet", str(tmp_path / "nowhere"), "--out-dir", str(out)])


# ---------------------------------------------------------------------------------------------
# The face in the box: a second person beside the subject
# ---------------------------------------------------------------------------------------------

# image_T1 (the subject, 480x640) with image_F2 at 0.7 scale beside it (a second, smaller person),
# on grey. Boxes of our MTCNN on this frame (min_face 20): the subject, the second person; and a
# box on the empty wall under the second person, where a box the mesh cannot fill would sit.
SUBJECT_BOX, SECOND_BOX, WALL_BOX = Box(115, 113, 175, 247), Box(578, 188, 153, 205), Box(485, 350, 120, 140)


def two_faces(samples_dir) -> np.ndarray:
    subject = cv2.imread(str(samples_dir / "image_T1.jpg"))
    second = cv2.resize(cv2.imread(str(samples_dir / "image_F2.jpg")), None, fx=0.7, fy=0.7,
                        interpolation=cv2.INTER_AREA)
    frame = np.full((640, 480 + second.shape[1], 3), 90, np.uint8)
    frame[:, :480] = subject
    frame[40:40 + second.shape[0], 480:] = second
    return frame


def _share_inside(pts, box: Box) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(((x >= box.x) & (x <= box.x + box.w) & (y >= box.y) & (y <= box.y + box.h)).mean())


def test_mesh_labels_the_face_in_the_box(samples_dir, estimator):
    frame = two_faces(samples_dir)
    for box, other in ((SUBJECT_BOX, SECOND_BOX), (SECOND_BOX, SUBJECT_BOX)):
        pts, reason = estimator.landmarks_with_reason(frame, box)
        assert reason == "" and _share_inside(pts, box) > 0.9 and _share_inside(pts, other) == 0.0


def test_no_map_when_no_mesh_overlaps_the_box(samples_dir, estimator):
    """The wall box's wider crop holds the second person's face: the mesh found there must not label
    the box (it would put a face beside the crop and leave the crop's label all black)."""
    frame = two_faces(samples_dir)
    depth, reason = estimator.estimate_with_reason(frame, WALL_BOX)
    assert depth is None and "no face mesh overlaps the box" in reason
    assert estimator.estimate(frame, WALL_BOX) is None
    with FaceDepthEstimator(min_box_iou=0.0) as anywhere:   # without the overlap rule: the other face
        pts = anywhere.landmarks(frame, WALL_BOX)
        assert pts is not None and _share_inside(pts, SECOND_BOX) > 0.9


def test_stage_reports_frames_whose_box_no_mesh_overlaps(samples_dir, tmp_path):
    root = tmp_path / "oulu_images"
    video = "1_1_01_1"
    frame = two_faces(samples_dir)
    for n, box in ((1, SUBJECT_BOX), (2, WALL_BOX)):
        path = root / "train_img_flod" / video / f"{video}_{n}_scene.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), frame)
        write_box(root / "train_bbox_flod" / video / f"{video}_{n}_scene.dat", box)
    out = tmp_path / "run"
    result = main(["--data-root", str(root), "--split", "train", "--out-dir", str(out)])
    assert result["written"] == 1 and result["not_on_box"] == 1
    depth = cv2.imread(str(root / "train_depth_flod" / video / f"{video}_1_depth1D.jpg"), cv2.IMREAD_UNCHANGED)
    b, s = SUBJECT_BOX, SECOND_BOX
    assert depth[b.y:b.y + b.h, b.x:b.x + b.w].mean() > 60 and depth[s.y:s.y + s.h, s.x:s.x + s.w].max() < 5
    assert not (root / "train_depth_flod" / video / f"{video}_2_depth1D.jpg").exists()
    assert "no face mesh overlaps the box" in _report(out / "skipped.csv")[f"{video}_2_scene.jpg"]
