"""data/extract_frame.py on tiny videos written here: naming, every-k/max-frames, bad videos, resume, shards."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.extract_frame import DONE_NAME, find_videos, main
from utils.io import read_image

W, H, N = 64, 48, 7


def write_video(path: Path, n_frames: int = N, base: int = 0, fourcc: str = "MJPG") -> Path:
    """Frame i (1-based) is a flat grey of value base + 30*i, so decode order can be read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (W, H))
    assert writer.isOpened()
    for i in range(1, n_frames + 1):
        writer.write(np.full((H, W, 3), base + 30 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "1_1_01_1.avi")
    write_video(root / "1_1_01_2.avi", base=5)
    write_video(root / "phone2" / "2_1_01_4.AVI", n_frames=5, base=10)  # nested, upper-case extension
    write_video(root / "phone2" / "clip.mp4", n_frames=4, base=3, fourcc="mp4v")
    (root / "notes.txt").write_text("not a video")
    return root


def extract(video_root, data_root, *extra) -> dict:
    return main(["--video-root", str(video_root), "--data-root", str(data_root), "--workers", "1", *extra])


def tree(root: Path) -> dict[str, bytes]:
    """Every file under the frame tree (marker files included) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "train_img_flod").rglob("*"))
            if p.is_file()}


def frame_numbers(video_dir: Path) -> list[int]:
    return sorted(int(p.name[len(video_dir.name) + 1:-len("_scene.jpg")]) for p in video_dir.glob("*_scene.jpg"))


def test_frames_counted_named_and_in_decode_order(videos, tmp_path):
    summary = extract(videos, tmp_path)
    assert summary["done"] == 4 and summary["failed"] == 0 and summary["frames"] == 7 + 7 + 5 + 4
    img = tmp_path / "train_img_flod"
    assert sorted(p.name for p in img.iterdir()) == ["1_1_01_1", "1_1_01_2", "2_1_01_4", "clip"]
    assert frame_numbers(img / "1_1_01_1") == [1, 2, 3, 4, 5, 6, 7]
    assert (img / "1_1_01_1" / "1_1_01_1_1_scene.jpg").is_file()  # unpadded, 1-based
    means = [read_image(img / "1_1_01_2" / f"1_1_01_2_{n}_scene.jpg").mean() for n in range(1, 8)]
    assert np.allclose(means, [5 + 30 * n for n in range(1, 8)], atol=3)
    frame = read_image(img / "2_1_01_4" / "2_1_01_4_5_scene.jpg")
    assert frame.shape == (H, W, 3) and abs(frame.mean() - 160) < 3
    assert frame_numbers(img / "clip") == [1, 2, 3, 4]
    done = json.loads((img / "1_1_01_1" / DONE_NAME).read_text())
    assert done["frames"] == 7 and done["decoded"] == 7
    run_dir = tmp_path / "logs" / "extract_train"
    assert {"config.json", "log.txt", "skipped.csv", "summary.json"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "config.json").read_text())["video_root"] == str(videos)


@pytest.mark.parametrize("every, max_frames, expected", [
    (3, 0, [1, 4, 7]), (1, 2, [1, 2]), (2, 3, [1, 3, 5]), (10, 0, [1]), (2, 10, [1, 3, 5, 7])])
def test_every_and_max_frames(videos, tmp_path, every, max_frames, expected):
    extract(videos, tmp_path, "--every", str(every), "--max-frames", str(max_frames))
    video_dir = tmp_path / "train_img_flod" / "1_1_01_2"
    assert frame_numbers(video_dir) == expected
    # the true index is kept: frame n still shows the n-th picture
    for n in expected:
        assert abs(read_image(video_dir / f"1_1_01_2_{n}_scene.jpg").mean() - (5 + 30 * n)) < 3


def test_bad_videos_are_reported_and_skipped(videos, tmp_path):
    root = tmp_path / "vids"
    write_video(root / "good.avi", n_frames=3)
    (root / "corrupt.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    cv2.VideoWriter(str(root / "empty.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H)).release()
    (root / "zero_bytes.mov").write_bytes(b"")
    write_video(root / "zz" / "good.avi", n_frames=2)  # sorted after good.avi: reported
    summary = extract(root, tmp_path / "out")
    assert summary["done"] == 1 and summary["failed"] == 3 and summary["duplicates"] == 1 and summary["frames"] == 3
    with open(summary["skipped_csv"], newline="") as f:
        rows = {Path(r["item"]).name: r["reason"] for r in csv.DictReader(f)}
    assert set(rows) == {"corrupt.avi", "empty.avi", "zero_bytes.mov", "good.avi"}
    assert "cannot open" in rows["corrupt.avi"] and "no frames" in rows["empty.avi"]
    assert "duplicate video name good" in rows["good.avi"]
    assert sorted(p.name for p in (tmp_path / "out" / "train_img_flod").iterdir()) == ["good"]


def corrupt_last_frames(path: Path, count: int) -> None:
    """Zero the JPEG data of the last ``count`` frame chunks of an MJPG AVI, keeping its index."""
    data = bytearray(path.read_bytes())
    pos, end = data.index(b"movi") + 4, data.index(b"idx1")
    chunks = []
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        chunks.append((pos + 8, size))
        pos += 8 + size + (size & 1)
    for start, size in chunks[-count:]:
        data[start:start + size] = bytes(size)
    path.write_bytes(bytes(data))


def test_truncated_video_keeps_its_frames_and_is_reported(tmp_path):
    corrupt_last_frames(write_video(tmp_path / "vids" / "cut.avi"), 4)
    summary = extract(tmp_path / "vids", tmp_path / "out")
    assert summary["partial"] == 1 and summary["frames"] == 3
    assert frame_numbers(tmp_path / "out" / "train_img_flod" / "cut") == [1, 2, 3]
    assert "decoded 3 of 7 frames" in Path(summary["skipped_csv"]).read_text()
    assert extract(tmp_path / "vids", tmp_path / "out")["resumed"] == 1  # kept frames count as finished


def test_exit_codes(tmp_path):
    with pytest.raises(SystemExit) as err:
        extract(tmp_path / "missing", tmp_path / "out")
    assert err.value.code == 2
    (tmp_path / "novids").mkdir()
    with pytest.raises(SystemExit) as err:
        extract(tmp_path / "novids", tmp_path / "out")
    assert err.value.code == 2
    (tmp_path / "bad" / "x.avi").parent.mkdir()
    (tmp_path / "bad" / "x.avi").write_bytes(b"garbage" * 100)
    with pytest.raises(SystemExit) as err:  # nothing decodable: the user must act
        extract(tmp_path / "bad", tmp_path / "out")
    assert err.value.code == 1


def test_killed_run_resumes_to_the_same_tree(videos, tmp_path):
    clean = tmp_path / "clean"
    extract(videos, clean)
    expected = tree(clean)
    resumed = tmp_path / "resumed"
    extract(videos, resumed)
    img = resumed / "train_img_flod"
    # what a kill leaves behind: a video without its marker and with frames missing, a stray temp
    # file of an interrupted atomic write, a marker-less video with every frame present
    (img / "1_1_01_1" / DONE_NAME).unlink()
    for n in (3, 6, 7):
        (img / "1_1_01_1" / f"1_1_01_1_{n}_scene.jpg").unlink()
    (img / "1_1_01_1" / ".1_1_01_1_3_scene.jpg.abc123.tmp").write_bytes(b"\xff\xd8 half a jpeg")
    (img / "clip" / DONE_NAME).unlink()
    (img / "2_1_01_4" / "2_1_01_4_5_scene.jpg").unlink()  # marker says 5 frames: redo
    summary = extract(videos, resumed)
    assert summary["resumed"] == 1 and summary["done"] == 3
    assert tree(resumed) == expected
    again = extract(videos, resumed)
    assert again["resumed"] == 4 and tree(resumed) == expected


def test_rerun_with_other_settings_leaves_only_the_new_frames(videos, tmp_path):
    extract(videos, tmp_path)
    extract(videos, tmp_path, "--every", "2", "--max-frames", "3")
    assert frame_numbers(tmp_path / "train_img_flod" / "1_1_01_1") == [1, 3, 5]
    assert json.loads((tmp_path / "train_img_flod" / "1_1_01_1" / DONE_NAME).read_text())["every"] == 2


def test_shards_are_disjoint_and_cover_everything_and_workers_agree(videos, tmp_path):
    full = tmp_path / "full"
    main(["--video-root", str(videos), "--data-root", str(full), "--workers", "2"])
    parts = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        extract(videos, out, "--shard", f"{k}/3")
        assert (out / "logs" / f"extract_train_shard{k}of3" / "config.json").is_file()
        parts.append(tree(out))
    names = [set(p) for p in parts]
    assert all(not (a & b) for i, a in enumerate(names) for b in names[i + 1:])
    merged = {k: v for p in parts for k, v in p.items()}
    assert merged == tree(full)
    assert len(find_videos(videos)[0]) == 4


def test_help_runs_as_a_script(repo_root):
    out = subprocess.run([sys.executable, "data/extract_frame.py", "--help"], cwd=repo_root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--every" in out.stdout and "--shard" in out.stdout


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun(tmp_path, repo_root):
    import os
    import signal
    import time

    root = tmp_path / "vids"
    for i in range(40):
        write_video(root / f"v{i:02d}.avi", n_frames=N, base=i)
    clean = tmp_path / "clean"
    extract(root, clean)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "data/extract_frame.py", "--video-root", str(root), "--data-root", str(killed),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(killed.glob("train_img_flod/*/*.jpg")):
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its workers, as a crash would
    proc.wait(timeout=60)
    extract(root, killed)
    assert tree(killed) == tree(clean)
    assert not list(killed.rglob("*.tmp"))


def test_csv_rows_of_image_folders_single_images_and_videos(tmp_path):
    """--protocol CSV: the path column finds each row's data; image folders are numbered in natural
    name order, a single image is frame 1, every row lands in its split's tree; resumable."""
    root = tmp_path / "mydata"
    folder = root / "s01" / "live_a"
    folder.mkdir(parents=True)
    for name, value in (("f10.png", 200), ("f2.png", 100), ("f1.png", 50)):  # natural order: f1, f2, f10
        cv2.imwrite(str(folder / name), np.full((H, W, 3), value, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    cv2.imwrite(str(root / "s01" / "poster.jpg"), np.full((H, W, 3), 150, np.uint8))
    write_video(root / "s02" / "clip.avi", n_frames=3)
    protocol = root / "mydata.csv"
    protocol.write_text("path,label,attack_type,subject,split\n"
                        "s01/live_a,1,,s01,train\n"
                        "s01/poster.jpg,0,print,s01,dev\n"
                        "s02/clip.avi,0,replay,s02,test\n"
                        "s03/gone,1,,s03,train\n")
    data = tmp_path / "frames"
    summary = main(["--protocol", str(protocol), "--data-root", str(data), "--workers", "1"])
    assert summary["done"] == 3 and summary["missing"] == 1 and summary["frames"] == 3 + 1 + 3
    live = data / "train_img_flod" / "live_a"
    assert frame_numbers(live) == [1, 2, 3]
    means = [read_image(live / f"live_a_{n}_scene.jpg").mean() for n in (1, 2, 3)]
    assert np.allclose(means, [50, 100, 200], atol=3)
    assert frame_numbers(data / "dev_img_flod" / "poster") == [1]
    assert frame_numbers(data / "test_img_flod" / "clip") == [1, 2, 3]
    skipped = (data / "logs" / "extract_mydata" / "skipped.csv").read_text()
    assert "mydata.csv:5" in skipped and "gone" in skipped

    again = main(["--protocol", str(protocol), "--data-root", str(data), "--workers", "1", "--every", "1"])
    assert again["resumed"] == 3 and again["done"] == 0
    cv2.imwrite(str(folder / "f11.png"), np.full((H, W, 3), 250, np.uint8))  # the folder changed: redone
    third = main(["--protocol", str(protocol), "--data-root", str(data), "--workers", "1"])
    assert third["resumed"] == 2 and third["done"] == 1 and frame_numbers(live) == [1, 2, 3, 4]
    fourth = main(["--protocol", str(protocol), "--data-root", str(data), "--workers", "1", "--max-frames", "3"])
    assert frame_numbers(live) == [1, 2, 3] and fourth["done"] == 3  # settings changed for every row
