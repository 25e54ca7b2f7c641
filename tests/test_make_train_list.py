"""data/make_train_list.py: deterministic draw, short videos, missing/malformed boxes, CSV protocols."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.boxes import Box, write_box
from data.frames import box_name, frame_name
from data.make_train_list import draw_frames, main
from utils.io import atomic_write_bytes

_JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")  # names are what the stage reads


def make_video(root: Path, video: str, n_frames: int, boxed=None, split: str = "train") -> None:
    """Frames 1..n of ``video``; boxes for the frames in ``boxed`` (all by default)."""
    boxed = range(1, n_frames + 1) if boxed is None else boxed
    for n in range(1, n_frames + 1):
        name = frame_name(video, n)
        atomic_write_bytes(root / f"{split}_img_flod" / video / name, _JPEG)
        if n in boxed:
            write_box(root / f"{split}_bbox_flod" / video / box_name(name), Box(10, 12, 30, 32, 0.99))


@pytest.fixture
def oulu(tmp_path) -> Path:
    root = tmp_path / "oulu_images"
    make_video(root, "1_1_01_1", 60)
    make_video(root, "1_1_01_2", 60, boxed=range(5, 61))
    make_video(root, "1_1_01_4", 3)  # short video
    make_video(root, "1_1_02_1", 50)
    make_video(root, "1_1_02_5", 45, boxed=())  # no box at all
    make_video(root, "1_1_03_3", 20)  # user without live video
    protocol = root / "protocols" / "Protocol_1" / "Train.txt"
    protocol.parent.mkdir(parents=True)
    protocol.write_text("+1,1_1_01_1\n-1,1_1_01_2\n-1,1_1_01_4\n+1,1_1_02_1\n-2,1_1_02_5\n-1,1_1_03_3\n"
                        "-1,1_1_01_3\n")  # the last has no frames
    return root


def build(root: Path, out: Path, *extra) -> dict:
    return main(["--data-root", str(root), "--out", str(out), *extra])


def read_lines(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text().splitlines()]


def skipped(out: Path) -> dict[str, str]:
    with open(out.parent / "logs" / out.stem / "skipped.csv", newline="") as f:
        return {row["item"]: row["reason"] for row in csv.DictReader(f)}


def test_list_format_counts_and_report(oulu, tmp_path):
    out = tmp_path / "train_list" / "train_list_oulu_p1.txt"
    summary = build(oulu, out)  # default protocol: <data-root>/protocols/Protocol_1/Train.txt
    lines = read_lines(out)
    assert out.read_bytes().endswith(b"\n") and b"\r" not in out.read_bytes()
    by_video: dict[str, list[int]] = {}
    for path, user, domain, file_id in lines:
        video, frame = path.split("/")
        assert frame.startswith(video + "_") and frame.endswith("_scene.jpg")
        assert user == video.split("_")[2] and file_id == video[-1] and domain == str(int(file_id == "1"))
        by_video.setdefault(video, []).append(int(frame[len(video) + 1:-len("_scene.jpg")]))
    assert set(by_video) == {"1_1_01_1", "1_1_01_2", "1_1_01_4", "1_1_02_1"}
    assert {v: len(n) for v, n in by_video.items()} == {"1_1_01_1": 40, "1_1_01_2": 40, "1_1_01_4": 3, "1_1_02_1": 40}
    assert all(n == sorted(n) and len(set(n)) == len(n) for n in by_video.values())
    assert by_video["1_1_01_4"] == [1, 2, 3]  # all frames of a short video, frame 1 included
    assert min(by_video["1_1_01_2"]) >= 5  # frames 1-4 have no box
    reasons = skipped(out)
    assert any("1_1_02_5: no frames with a box" in r for r in reasons.values())
    assert any("1_1_01_3: no frames in" in r for r in reasons.values())
    assert any("1_1_03_3: user 03 has no live frames" in r for r in reasons.values())
    assert all(":" in item and "Train.txt" in item for item in reasons)  # items name the protocol line
    assert summary["lines"] == 123 and summary["live"] == 80 and summary["frames_without_box"] == 4 + 45
    assert json.loads((out.parent / "logs" / out.stem / "file_ids.json").read_text()) == {
        "bona fide": 1, "print1": 2, "print2": 3, "replay1": 4, "replay2": 5}


def test_same_seed_same_bytes_other_seed_other_frames(oulu, tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    build(oulu, a, "--seed", "3")
    build(oulu, b, "--seed", "3")
    build(oulu, c, "--seed", "4")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_a_videos_frames_do_not_depend_on_the_other_videos(oulu, tmp_path):
    full, part = tmp_path / "full.txt", tmp_path / "part.txt"
    build(oulu, full)
    small = tmp_path / "small.txt"
    small.write_text("+1,1_1_02_1\n-1,1_1_01_2\n+1,1_1_01_1\n")
    build(oulu, part, "--protocol", str(small))
    full_lines = [line for line in full.read_text().splitlines() if line.startswith("1_1_01_2/")]
    part_lines = [line for line in part.read_text().splitlines() if line.startswith("1_1_01_2/")]
    assert full_lines == part_lines and len(part_lines) == 40


def test_no_require_box_uses_every_frame(oulu, tmp_path):
    out = tmp_path / "nobox.txt"
    build(oulu, out, "--no-require-box", "--frames-per-video", "100")
    videos = [line[0].split("/")[0] for line in read_lines(out)]
    assert videos.count("1_1_02_5") == 45 and videos.count("1_1_01_2") == 60


def test_malformed_box_is_reported_and_not_drawn(oulu, tmp_path):
    bad = oulu / "train_bbox_flod" / "1_1_01_4" / "1_1_01_4_2_scene.dat"
    bad.write_text("12 oops")
    out = tmp_path / "l.txt"
    build(oulu, out)
    frames = [line[0] for line in read_lines(out) if line[0].startswith("1_1_01_4/")]
    assert frames == ["1_1_01_4/1_1_01_4_1_scene.jpg", "1_1_01_4/1_1_01_4_3_scene.jpg"]
    assert any(Path(item) == bad for item in skipped(out))


def test_draw_frames():
    frames = [f"v_{n}_scene.jpg" for n in range(1, 101)]
    drawn = draw_frames(frames, 10, 0, "v")
    assert len(drawn) == 10 and drawn == sorted(drawn, key=frames.index) and drawn == draw_frames(frames, 10, 0, "v")
    assert draw_frames(frames, 10, 0, "w") != drawn
    assert draw_frames(frames[:4], 10, 0, "v") == frames[:4]
    # every position, 0 included, can be drawn
    hits = {f for s in range(300) for f in draw_frames(frames[:5], 4, s, "v")}
    assert hits == set(frames[:5])


def test_csv_protocol_subjects_and_attack_type_ids(tmp_path):
    root = tmp_path / "data"
    for video, n in [("alice_live", 5), ("alice_mask", 5), ("alice_print", 5), ("bob_live", 5), ("bob_print", 5),
                     ("carol_live", 5)]:
        make_video(root, video, n)
    protocol = tmp_path / "siw.csv"
    protocol.write_text("path,label,attack_type,subject,split\n"
                        "live/alice_live.mov,1,,alice,train\nspoof/alice_mask.mov,0,mask,alice,train\n"
                        "spoof/alice_print.mov,0,print,alice,train\nbob_live,1,,bob,train\n"
                        "bob_print,0,print,bob,train\ncarol_live,1,,carol,dev\np1_0_1_0,1,,,train\n")
    out = tmp_path / "csv_list.txt"
    build(root, out, "--protocol", str(protocol), "--frames-per-video", "2")
    lines = read_lines(out)
    assert {(p.split("/")[0], u, d, f) for p, u, d, f in lines} == {
        ("alice_live", "alice", "1", "1"), ("alice_mask", "alice", "0", "2"), ("alice_print", "alice", "0", "3"),
        ("bob_live", "bob", "1", "1"), ("bob_print", "bob", "0", "3")}  # carol is dev, p1_0_1_0 generated
    assert len(lines) == 10
    assert json.loads((tmp_path / "logs" / "csv_list" / "file_ids.json").read_text()) == {
        "bona fide": 1, "mask": 2, "print": 3}


def test_errors_exit_non_zero(oulu, tmp_path):
    with pytest.raises(SystemExit) as err:
        build(tmp_path / "nowhere", tmp_path / "x.txt")
    assert err.value.code == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("+1,1_1_01_1\n+1 1_1_02_1\n")
    with pytest.raises(SystemExit) as err:
        build(oulu, tmp_path / "x.txt", "--protocol", str(bad))
    assert err.value.code == 2
    empty = tmp_path / "empty_p.txt"
    empty.write_text("-2,1_1_02_5\n")  # no usable frames at all
    with pytest.raises(SystemExit) as err:
        build(oulu, tmp_path / "x.txt", "--protocol", str(empty))
    assert err.value.code == 2 and not (tmp_path / "x.txt").exists()


def test_help_runs_as_a_script(repo_root):
    out = subprocess.run([sys.executable, "data/make_train_list.py", "--help"], cwd=repo_root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--require-box" in out.stdout and "--frames-per-video" in out.stdout


def test_seeded_choice_is_numpy_generator_based():
    # the draw must not touch the global NumPy state (other stages seed it for their own use)
    np.random.seed(1)
    before = np.random.random()
    np.random.seed(1)
    draw_frames([f"v_{n}_scene.jpg" for n in range(1, 50)], 5, 0, "v")
    assert np.random.random() == before
