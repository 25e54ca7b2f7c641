"""data/make_protocol.py and data/benchmarks/: fake trees with each release's exact layout and names,
split counts, labels, attack types, fold membership, error paths and subject disjointness."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmark_trees import SIWM_FOLDERS, make_casia, make_oulu, make_replay, make_siw, make_siwm, touch
from data.benchmarks import casia, folders, oulu, replay, siw, siwm
from data.benchmarks.common import carve_dev, check_disjoint, item
from data.make_protocol import main as make_protocol
from data.protocols import read_protocol
from utils.io import InputError


def table(items) -> Counter:
    """(split, attack type or 'live') -> rows."""
    return Counter((it.split, it.attack_type or "live") for it in items)


def subjects(items, split) -> set:
    return {it.subject for it in items if it.split == split}


def assert_disjoint(items):
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not subjects(items, a) & subjects(items, b)


# ---------------------------------------------------------------------------------------------- SiW

def test_siw_protocol1_all_videos_dev_carved_from_train_and_60_frames(tmp_path):
    (b,) = siw.build(make_siw(tmp_path / "SiW_release"), "1")
    # 5 train subjects x (2 live, 2 print, 4 replay); round(0.2 * 5) = 1 subject to dev; 3 test subjects
    assert table(b.items) == {("train", "live"): 8, ("train", "print"): 8, ("train", "replay"): 16,
                              ("dev", "live"): 2, ("dev", "print"): 2, ("dev", "replay"): 4,
                              ("test", "live"): 6, ("test", "print"): 6, ("test", "replay"): 12}
    assert subjects(b.items, "test") == {"091", "092", "093"}
    assert len(subjects(b.items, "dev")) == 1 and subjects(b.items, "dev") < {"001", "002", "003", "004", "005"}
    assert_disjoint(b.items)
    assert b.notes["train_max_frames"] == 60
    assert all(it.label == (it.attack_type == "") for it in b.items)
    assert {it.path.split("/")[1] for it in b.items if it.is_live} == {"live"}


def test_siw_accepts_the_m_infix_of_some_copies(tmp_path):
    root = make_siw(tmp_path / "s")
    (root / "Train/live/001/001-1-1-1-1.mov").rename(root / "Train/live/001/001-1-1-1-1.m.mov")
    (b,) = siw.build(root, "1")
    assert "Train/live/001/001-1-1-1-1.m.mov" in {it.path for it in b.items}


@pytest.mark.parametrize("fold", [1, 2, 3, 4])
def test_siw_protocol2_leaves_one_replay_medium_out(tmp_path, fold):
    (b,) = siw.build(make_siw(tmp_path / "s"), "2", str(fold))
    media = {(it.split, int(it.video_id.split("-")[3])) for it in b.items if not it.is_live}
    assert {m for s, m in media if s == "test"} == {fold}
    assert {m for s, m in media if s in ("train", "dev")} == {1, 2, 3, 4} - {fold}
    assert {it.attack_type for it in b.items} == {"", "replay"}  # print is not part of protocol 2
    # train + dev: 5 subjects x (2 live + 3 replay); test: 3 x (2 live + 1 replay)
    c = table(b.items)
    assert c[("train", "replay")] + c[("dev", "replay")] == 15 and c[("train", "live")] + c[("dev", "live")] == 10
    assert c[("test", "replay")] == 3 and c[("test", "live")] == 6
    assert b.name == f"siw_p2_f{fold}" and b.notes["held_out"] == f"replay medium {fold}"


def test_siw_protocol3_print_to_replay_and_back(tmp_path):
    f1, f2 = siw.build(make_siw(tmp_path / "s"), "3")
    assert {it.attack_type for it in f1.items if it.split != "test"} == {"", "print"}
    assert {it.attack_type for it in f1.items if it.split == "test"} == {"", "replay"}
    assert {it.attack_type for it in f2.items if it.split != "test"} == {"", "replay"}
    assert {it.attack_type for it in f2.items if it.split == "test"} == {"", "print"}
    assert table(f2.items)[("test", "print")] == 6


def test_siw_dev_split_is_the_same_in_every_fold_and_follows_the_seed(tmp_path):
    root = make_siw(tmp_path / "s", train=tuple(f"{k:03d}" for k in range(1, 11)))
    devs = [subjects(b.items, "dev") for b in siw.build(root, "2")]
    assert all(d == devs[0] for d in devs) and len(devs[0]) == 2  # round(0.2 * 10)
    others = [subjects(siw.build(root, "2", "1", seed=s)[0].items, "dev") for s in range(1, 6)]
    assert any(d != devs[0] for d in others)


@pytest.mark.parametrize("bad, message", [
    ("Train/live/001/001-3-1-1-1.mov", "unexpected file name"),         # sensor 3 does not exist
    ("Train/live/001/001-1-2-1-1.mov", "does not belong in live/"),     # a print video among live ones
    ("Train/spoof/001/001-1-3-5-1.mov", "replay medium must be 1..4"),
    ("Train/spoof/001/002-1-3-1-1.mov", "in folder 001"),
    ("Test/live/001/001-1-1-1-1.mov", "in both Train and Test"),
    ("Train/live/x01/001-1-1-1-1.mov", "subject folders such as 006"),
])
def test_siw_errors_name_the_path(tmp_path, bad, message):
    root = make_siw(tmp_path / "s")
    touch(root / bad)
    with pytest.raises(InputError, match=message) as err:
        siw.build(root, "1")
    assert str(root / Path(bad).parent) in str(err.value)


def test_siw_missing_folder_and_bad_protocol(tmp_path):
    root = make_siw(tmp_path / "s")
    for path in sorted((root / "Test" / "spoof").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "Test" / "spoof").rmdir()
    with pytest.raises(InputError, match=r"Test/spoof: missing folder"):
        siw.build(root, "1")
    with pytest.raises(InputError, match="protocols are 1, 2 and 3"):
        siw.build(make_siw(tmp_path / "t"), "4")
    with pytest.raises(InputError, match="folds 1..4"):
        siw.build(tmp_path / "t", "2", "5")


# ---------------------------------------------------------------------------------------------- CASIA

def test_casia_split_types_subjects_and_unique_links(tmp_path):
    root = make_casia(tmp_path / "CASIA")
    (b,) = casia.build(root)
    c = table(b.items)
    # 3 train subjects (1 carved to dev), 2 test subjects; 3 live + 3 of each attack per subject
    assert c[("dev", "live")] == 3 and c[("dev", "warped_print")] == 3 and c[("train", "replay")] == 6
    assert c[("test", "live")] == 6 and c[("test", "cut_print")] == 6 and c[("test", "warped_print")] == 6
    assert subjects(b.items, "test") == {"21", "22"}  # test folders 1, 2 are subjects 21, 22
    assert_disjoint(b.items)
    assert len({it.video_id for it in b.items}) == 60
    assert b.links["casia_test_release_2_HR_4.avi"] == root / "test_release" / "2" / "HR_4.avi"
    row = next(it for it in b.items if it.path == "casia_test_release_2_HR_4.avi")
    assert (row.label, row.attack_type, row.subject, row.split) == (0, "replay", "22", "test")
    assert next(it for it in b.items if it.path == "casia_train_release_1_HR_1.avi").label == 1


@pytest.mark.parametrize("bad, message", [("train_release/1/9.avi", "unexpected file name"),
                                          ("test_release/31/1.avi", "subject folders 1..30"),
                                          ("train_release/2/extra/1.avi", "unexpected folder")])
def test_casia_errors(tmp_path, bad, message):
    root = make_casia(tmp_path / "c")
    touch(root / bad)
    with pytest.raises(InputError, match=message):
        casia.build(root)


def test_casia_missing_test_release(tmp_path):
    root = tmp_path / "c"
    make_casia(root, test=0)
    with pytest.raises(InputError, match="test_release: missing folder"):
        casia.build(root)


# ---------------------------------------------------------------------------------------------- Replay-Attack

def test_replay_grandtest_uses_the_devel_set_and_every_support(tmp_path):
    (b,) = replay.build(make_replay(tmp_path / "replayattack"))
    c = table(b.items)
    # per client: 2 real; print 1 (fixed), mobile 2 (fixed + hand), highdef 1 (hand); enroll/ ignored
    assert c == {("train", "live"): 4, ("train", "print"): 2, ("train", "mobile"): 4, ("train", "highdef"): 2,
                 ("dev", "live"): 2, ("dev", "print"): 1, ("dev", "mobile"): 2, ("dev", "highdef"): 1,
                 ("test", "live"): 4, ("test", "print"): 2, ("test", "mobile"): 4, ("test", "highdef"): 2}
    assert subjects(b.items, "dev") == {"client003"}
    assert {it.path.split("/")[2] for it in b.items if not it.is_live} == {"fixed", "hand"}
    assert b.name == "replay_grandtest" and not any("enroll" in it.path for it in b.items)


def test_replay_client_in_two_sets_is_an_error(tmp_path):
    root = make_replay(tmp_path / "r", {"train": ("001",), "devel": ("003",), "test": ("001", "004")})
    (b,) = replay.build(root)
    with pytest.raises(InputError, match="subject 'client001' is in 2 splits"):
        check_disjoint(b.items, "replay")
    with pytest.raises(SystemExit):
        make_protocol(["--dataset", "replay", "--root", str(root), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "replay_grandtest.csv").exists()


def test_replay_unexpected_support_and_name(tmp_path):
    root = make_replay(tmp_path / "r")
    touch(root / "test" / "attack" / "tripod" / "x.mov")
    with pytest.raises(InputError, match="tripod: unexpected entry"):
        replay.build(root)
    root = make_replay(tmp_path / "q")
    touch(root / "devel" / "real" / "client003_webcam.mov")
    with pytest.raises(InputError, match="client003_webcam.mov: unexpected file name"):
        replay.build(root)


# ---------------------------------------------------------------------------------------------- SiW-M

def test_siwm_thirteen_folds_each_holds_one_type_out(tmp_path):
    builds = siwm.build(make_siwm(tmp_path / "SiW-M", per_type=2))
    assert len(builds) == 13 == len(SIWM_FOLDERS)
    for k, b in enumerate(builds, 1):
        held = b.notes["held_out"]
        assert {it.attack_type for it in b.items if it.split == "test" and not it.is_live} == {held}
        assert held not in {it.attack_type for it in b.items if it.split != "test"}
        assert len({it.attack_type for it in b.items if it.split != "test" and not it.is_live}) == 12
        # official live split: Live/Train (4) -> train + dev, Live/Test (2) -> test
        assert {it.path.split("/")[1] for it in b.items if it.is_live and it.split == "test"} == {"Test"}
        # dev per kind: round(0.2 * 4) = 1 of the 4 training live videos, 1 of the 2 videos of each training type
        assert sum(it.is_live for it in b.items if it.split == "dev") == 1
        assert sorted(it.attack_type for it in b.items if it.split == "dev" and not it.is_live) == \
            sorted(t for t in siwm.TYPES if t != held)
        assert b.name.startswith(f"siwm_f{k:02d}_")
    assert [b.notes["held_out"] for b in builds][:3] == ["replay", "print", "half_mask"]
    (one,) = siwm.build(tmp_path / "SiW-M", fold="partial_paper")
    assert one.name == "siwm_f13_partial_paper"


def test_siwm_missing_type_folder_and_duplicate_names(tmp_path):
    root = make_siwm(tmp_path / "m")
    (root / "Mask" / "PaperMask" / "Mask_PaperMask_1.mov").unlink()
    (root / "Mask" / "PaperMask").rmdir()
    with pytest.raises(InputError, match="PaperMask: missing folder"):
        siwm.build(root)
    root = make_siwm(tmp_path / "n")
    touch(root / "Replay" / "Live_1.mov")
    with pytest.raises(InputError, match="also used by"):
        siwm.build(root)


# ---------------------------------------------------------------------------------------------- OULU-NPU, folders

def test_oulu_lists_become_csv_with_subjects_and_missing_video_is_an_error(tmp_path):
    root = make_oulu(tmp_path / "Oulu_NPU")
    (b,) = oulu.build(root, "1")
    assert table(b.items) == {("train", "live"): 4, ("train", "print"): 8, ("train", "replay"): 8,
                              ("dev", "live"): 2, ("dev", "print"): 4, ("dev", "replay"): 4,
                              ("test", "live"): 2, ("test", "print"): 4, ("test", "replay"): 4}
    assert subjects(b.items, "dev") == {"21"} and b.items[0].path == "Train_files/1_1_01_1.avi"
    assert oulu.expected_counts(1, None)["train/live"] == 240 and oulu.expected_counts(3, 2)["test/attack"] == 240
    (root / "Test_files" / "1_3_37_4.avi").unlink()
    with pytest.raises(InputError, match=r"Test.txt:\d+: video 1_3_37_4 is listed but .*1_3_37_4.avi does not exist"):
        oulu.build(root, "1")


def test_folders_subject_folders_image_folders_and_split_folders(tmp_path):
    root = tmp_path / "mine"
    for split, people in (("train", ("ann", "bob", "cid", "dan", "eve")), ("test", ("fay", "gus"))):
        for p in people:
            touch(root / split / "live" / p / "clip1.mp4")
            touch(root / split / "live" / f"{p}_frames" / "0001.jpg")          # an image-folder item
            touch(root / split / "attack" / "print" / f"{p}_p.jpg")           # a single image
            touch(root / split / "spoof" / "replay" / p / "r1.mov")
    (b,) = folders.build(root)
    c = table(b.items)
    assert c[("test", "live")] == 4 and c[("test", "print")] == 2 and c[("test", "replay")] == 2
    assert c[("dev", "live")] == 2 and len(subjects(b.items, "dev")) == 1
    assert "train/live/ann_frames" in {it.path for it in b.items}
    assert_disjoint(b.items)
    touch(root / "train" / "live" / "notes.txt")
    with pytest.raises(InputError, match="notes.txt: unexpected file"):
        folders.build(root)


def test_folders_without_split_folders_split_subjects_seeded(tmp_path):
    root = tmp_path / "flat"
    people = [f"p{k:02d}" for k in range(10)]
    for p in people:
        touch(root / "real" / f"{p}_live.mp4")
        touch(root / "fake" / "screen" / f"{p}-replay.mov")
    (b,) = folders.build(root, protocol="mine", seed=3)
    # 10 subjects: round(0.3 * 10) = 3 to test, round(0.2 * 10) = 2 to dev, 5 to train; both rows of a subject together
    assert [len(subjects(b.items, s)) for s in ("train", "dev", "test")] == [5, 2, 3]
    assert table(b.items)[("test", "screen")] == 3 and table(b.items)[("dev", "live")] == 2
    assert_disjoint(b.items)
    assert b.name == "mine" and subjects(folders.build(root, seed=3)[0].items, "test") == subjects(b.items, "test")
    assert any(subjects(folders.build(root, seed=s)[0].items, "test") != subjects(b.items, "test") for s in range(4, 9))


# ---------------------------------------------------------------------------------------------- command

def test_make_protocol_writes_csv_json_index_and_links(tmp_path):
    out = tmp_path / "protocols"
    make_protocol(["--dataset", "siw", "--root", str(make_siw(tmp_path / "s")), "--protocol", "2", "--out", str(out)])
    make_protocol(["--dataset", "casia", "--root", str(make_casia(tmp_path / "c")), "--out", str(out)])
    index = json.loads((out / "index.json").read_text())
    assert sorted(index) == ["casia", "siw_p2_f1", "siw_p2_f2", "siw_p2_f3", "siw_p2_f4"]
    items = read_protocol(out / "siw_p2_f2.csv")
    assert {it.split for it in items} == {"train", "dev", "test"}
    meta = json.loads((out / "siw_p2_f2.json").read_text())
    assert meta["counts"]["test/replay"] == 3 and meta["fold"] == "2" and meta["video_root"] == str(tmp_path / "s")
    assert any("train/subjects is 5" in w for w in meta["warnings"])  # the paper states 90
    casia_meta = json.loads((out / "casia.json").read_text())
    link = Path(casia_meta["video_root"]) / "casia_train_release_3_7.avi"
    assert link.is_symlink() and link.resolve() == (tmp_path / "c" / "train_release" / "3" / "7.avi").resolve()
    # a rerun leaves everything in place
    make_protocol(["--dataset", "casia", "--root", str(tmp_path / "c"), "--out", str(out)])
    assert link.is_symlink()


def test_carve_dev_needs_two_subjects_and_keeps_test():
    rows = [item("a.mov", 1, "", "s1", "train"), item("b.mov", 0, "print", "s1", "train"),
            item("c.mov", 1, "", "s2", "test")]
    with pytest.raises(InputError, match="1 training subject"):
        carve_dev(rows, 0.2, 0)
    rows += [item("d.mov", 1, "", "s3", "train"), item("e.mov", 0, "print", "s3", "train")]
    carved = carve_dev(rows, 0.2, 0)
    assert [it.split for it in carved if it.subject == "s2"] == ["test"]
    assert sum(it.split == "dev" for it in carved) == 2


# ---------------------------------------------------------------------------------------------- run_benchmark.sh helpers

def test_plan_folds_get_subset_attack_types_and_mark(tmp_path, repo_root):
    import subprocess
    import sys

    from data.benchmarks import plan

    out = tmp_path / "p"
    make_protocol(["--dataset", "siwm", "--root", str(make_siwm(tmp_path / "m", per_type=2)), "--out", str(out)])
    make_protocol(["--dataset", "siw", "--root", str(make_siw(tmp_path / "s")), "--protocol", "1", "--out", str(out)])
    assert plan.fold_names(out, "siwm", None, "5") == ["siwm_f05_transparent_mask"]
    assert plan.fold_names(out, "siwm", "loo", "cosmetic") == ["siwm_f10_cosmetic"]
    assert len(plan.fold_names(out, "siwm", None, None)) == 13 and plan.fold_names(out, "siw", "1", None) == ["siw_p1"]
    with pytest.raises(InputError, match="no protocol of siw protocol 2"):
        plan.fold_names(out, "siw", "2", None)
    assert plan.get(out / "siw_p1.json", "notes.train_max_frames") == 60
    assert plan.get(out / "siwm_f01_replay.json", "notes.train_max_frames", 0) == 0
    train = plan.subset(out / "siw_p1.csv", ["train"], tmp_path / "train.csv")
    assert {it.split for it in read_protocol(train)} == {"train"} and len(read_protocol(train)) == 32
    assert plan.attack_types(out / "siwm_f01_replay.csv") == 12 and plan.attack_types(out / "siw_p1.csv") == 2
    mark = json.loads(plan.mark(tmp_path / "run", out / "siwm_f01_replay.json", "replay").read_text())
    assert mark == {"dataset": "siwm", "protocol": "loo", "fold": "replay", "protocol_file": "siwm_f01_replay.csv",
                    "target": "replay"}
    res = subprocess.run([sys.executable, "-m", "data.benchmarks.plan", "folds", "--out", str(out), "--dataset",
                          "casia"], cwd=repo_root, capture_output=True, text=True)
    assert res.returncode != 0 and "no protocol of casia" in res.stderr


def test_run_benchmark_checks_its_arguments(repo_root, tmp_path):
    import subprocess

    script = str(repo_root / "scripts" / "run_benchmark.sh")
    res = subprocess.run(["bash", script, "--dataset", "siw"], capture_output=True, text=True)
    assert res.returncode == 2 and "--dataset and --root are required" in res.stderr
    res = subprocess.run(["bash", script, "--dataset", "casia", "--root", str(tmp_path), "--target", "replay"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--target needs --target-root" in res.stderr
    res = subprocess.run(["bash", script, "--dataset", "siw", "--root", str(tmp_path), "--profile", "paper",
                          "--ip-model", str(tmp_path / "none.pth")], capture_output=True, text=True)
    assert res.returncode == 2 and "none.pth is missing" in res.stderr
    assert "--target NAME" in subprocess.run(["bash", script, "--help"], capture_output=True, text=True).stdout
