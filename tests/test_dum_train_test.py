"""End to end: DUM/train.py for a few steps on real crops + generated frames, then DUM/test.py.

Tiny settings (64 px, width 0.25, 8x8 maps, batches of 6 real + 2 generated). Also: resume equals
an uninterrupted run, the released checkpoint layout loads, and train.py never reads the test split.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dum_testdata as td
from data.frames import depth_name, split_dirs
from data.protocols import read_protocol
from DUM import test as dum_test
from DUM import train as dum_train
from DUM.dataset import normalize_image
from networks import build_depth_net
from utils.io import read_image

TINY = ["--image-size", "64", "--width", "0.25", "--batch-size", "8", "--ratio", "0.75", "--workers", "0",
        "--device", "cpu", "--eval-start", "1", "--eval-every", "1", "--frame-batch", "4"]

# Paths opened or listed while the audit hook records (Python's audit events cover open(), io and
# numpy's fromfile, os.listdir and os.scandir: every way our code reads protocol lists and images).
_ACCESSED: list[str] | None = None


def _audit(event, args):
    if _ACCESSED is not None and event in ("open", "os.listdir", "os.scandir") and args:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            _ACCESSED.append(os.fsdecode(path))


sys.addaudithook(_audit)


def _train(crop_root: Path, out_dir: Path, *extra) -> dict:
    return dum_train.main(["--crop-root", str(crop_root), "--protocol", "1", "--out-dir", str(out_dir), *TINY, *extra])


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run fastest on one thread, and far faster on a loaded 2-core machine, where
    OpenMP workers spin waiting for each other (measured: ~0.25 s vs ~2.5 s CPU per training step)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, samples_dir):
    return td.build_tree(tmp_path_factory.mktemp("dumtrain"), samples_dir)


@pytest.fixture(scope="module")
def trained(tree, tmp_path_factory):
    """Two epochs, dev evaluated after each, with every file access recorded."""
    global _ACCESSED
    out = tmp_path_factory.mktemp("run") / "CDCN_U_P1"
    _ACCESSED = []
    try:
        result = _train(tree["crop_root"], out, "--epochs", "2")
        accessed = list(_ACCESSED)
    finally:
        _ACCESSED = None
    return {"out": out, "result": result, "accessed": accessed}


def test_train_writes_run_folder_and_checkpoints(trained):
    out = trained["out"]
    for name in ("config.json", "log.txt", "metrics.csv", "last.pt", "best.pt", "dev_scores.csv", "map_score_val.txt",
                 "skipped.csv"):
        assert (out / name).is_file(), name
    rows = _read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert all(math.isfinite(float(r[k])) for k in ("loss", "mse", "cdl", "kl", "gen_mse", "dev_acer", "dev_eer"))
        assert float(r["gen_mse"]) > 0 and float(r["kl"]) > 0  # generated part and KL are really in the loss
    assert float(rows[0]["lr"]) == pytest.approx(1e-4)
    best = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "config", "threshold", "threshold_eer",
                "threshold_source", "git_sha"):
        assert key in best and key in last, key
    assert last["epoch"] == 2 and best["epoch"] in (1, 2)
    assert Path(best["threshold_source"]).name == "Dev.txt"
    assert math.isfinite(best["threshold_eer"])
    assert best["config"]["train_list"].endswith("Train_g.txt")
    sel = rows[best["epoch"] - 1]
    assert float(sel["dev_acer"]) == min(float(r["dev_acer"]) for r in rows)
    assert float(sel["dev_threshold"]) == pytest.approx(best["threshold"])
    config = json.loads((out / "config.json").read_text())
    assert config["kl_lambda"] == 0.001 and config["gen_weight"] == 0.1 and config["model"] == "cdcn_u"


def test_train_never_reads_the_test_split(trained, tree):
    accessed = trained["accessed"]
    # the recorder works: it saw the dev list, the dev crops (numpy fromfile) and the train list
    assert any(p.endswith("Dev.txt") for p in accessed)
    assert any("dev_img_flod" in p and p.endswith("_scene.jpg") for p in accessed)
    assert any(p.endswith("Train_g.txt") for p in accessed)
    leaks = [p for p in accessed if "test.txt" in p.lower() or "test_img_flod" in p or "test_depth_flod" in p]
    assert leaks == []


def test_protocol_lists_need_no_test_file(tree, tmp_path):
    proto = tmp_path / "protocols" / "Protocol_1"
    proto.mkdir(parents=True)
    shutil.copy(tree["crop_root"] / "protocols" / "Protocol_1" / "Dev.txt", proto)
    shutil.copy(tree["crop_root"] / "protocols" / "Protocol_1" / "Train.txt", proto)
    args = dum_train.build_parser().parse_args(["--protocol-dir", str(tmp_path / "protocols")])
    train, dev = dum_train.protocol_lists(args)
    assert train.name == "Train.txt" and dev.name == "Dev.txt"  # no Train_g: real data only
    shutil.copy(tree["crop_root"] / "protocols" / "Protocol_1" / "Train_g.txt", proto)
    assert dum_train.protocol_lists(args)[0].name == "Train_g.txt"
    assert "test" not in " ".join(a.dest for a in dum_train.build_parser()._actions)
    with pytest.raises(Exception, match="fold"):
        dum_train.protocol_lists(dum_train.build_parser().parse_args(["--protocol", "3"]))


@pytest.fixture(scope="module")
def tested(trained, tree, tmp_path_factory):
    """test.py on a copy of best.pt, with --save-threshold."""
    tmp = tmp_path_factory.mktemp("tested")
    ckpt = tmp / "best.pt"
    # without train.py's thresholds, so what the checkpoint holds afterwards can only come from --save-threshold
    obj = torch.load(trained["out"] / "best.pt", weights_only=True)
    for key in ("threshold", "threshold_eer", "threshold_source", "threshold_info"):
        obj.pop(key, None)
    torch.save(obj, ckpt)
    out = tmp / "test_out"
    result = dum_test.main(["--checkpoint", str(ckpt), "--crop-root", str(tree["crop_root"]), "--protocol", "1",
                            "--out-dir", str(out), "--device", "cpu", "--workers", "0", "--save-threshold"])
    return {"ckpt": ckpt, "out": out, "result": result}


def test_test_script_writes_everything_and_scores_like_the_original(trained, tested, tree):
    ckpt, out, result = tested["ckpt"], tested["out"], tested["result"]
    train_threshold = torch.load(trained["out"] / "best.pt", weights_only=True)["threshold"]
    for name in ("scores_dev.csv", "scores_test.csv", "map_score_val.txt", "map_score_test.txt", "metrics.json",
                 "report.txt", "roc.png", "det.png", "score_hist.png", "threshold.json", "skipped.csv",
                 "frame_scores_dev.csv", "frame_scores_test.csv", "config.json", "log.txt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rows"]) == {"cdcn_compatible", "iso_30107_3"}
    assert set(metrics["rows"]["iso_30107_3"]["APCER_per_attack_type"]) == {"print", "replay"}
    assert metrics["rows"] == json.loads(json.dumps(result["rows"]))
    test_rows = _read_csv(out / "scores_test.csv")
    assert len(test_rows) == 10 and {r["attack_type"] for r in test_rows} == {"", "print", "replay"}
    assert len((out / "map_score_test.txt").read_text().splitlines()) == 10
    assert [r["video_id"] for r in test_rows] == [it.video_id for it in read_protocol(
        tree["crop_root"] / "protocols" / "Protocol_1" / "Test.txt")]
    # the threshold comes from dev: the same dev scores train.py saw at that epoch
    threshold = json.loads((out / "threshold.json").read_text())
    assert threshold["threshold"] == pytest.approx(train_threshold, rel=1e-5)
    assert Path(threshold["threshold_source"]).name == "Dev.txt"
    stored = torch.load(ckpt, weights_only=True)  # had no thresholds before test.py --save-threshold
    assert stored["threshold"] == threshold["threshold"] and stored["threshold_source"] == threshold["threshold_source"]
    assert stored["threshold_eer"] == threshold["threshold_eer"]
    # one video by hand: mean over frames of sum(mu) / sum(raw depth)
    model, _, _ = dum_test.load_model(dum_test.build_parser().parse_args(["--checkpoint", str(ckpt)]), ckpt,
                                      torch.device("cpu"))
    dirs = split_dirs(tree["crop_root"], "test")
    row = test_rows[3]
    frames = sorted((dirs["img"] / row["video_id"]).iterdir())
    scores = []
    for f in frames:
        bgr = read_image(f)
        x = normalize_image(torch.from_numpy(bgr[:, :, ::-1].transpose(2, 0, 1).copy())).unsqueeze(0)
        depth = read_image(dirs["depth"] / row["video_id"] / depth_name(f.name), grey=True)
        with torch.no_grad():
            mu = model(x).mu
        scores.append(mu.sum().item() / float(depth.sum()))
    assert float(row["score"]) == pytest.approx(sum(scores) / len(scores), rel=1e-4, abs=1e-7)


def test_resume_equals_uninterrupted(trained, tree, tmp_path):
    out = tmp_path / "resumed"
    _train(tree["crop_root"], out, "--epochs", "1")
    _train(tree["crop_root"], out, "--epochs", "2", "--resume", "last")
    a = torch.load(trained["out"] / "last.pt", weights_only=True)
    b = torch.load(out / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    ra, rb = _read_csv(trained["out"] / "metrics.csv"), _read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rb] == ["1", "2"]
    for col in ("loss", "mse", "cdl", "kl", "dev_acer", "dev_threshold"):
        assert ra[1][col] == rb[1][col], col


def test_released_checkpoint_layout_loads(trained, tested, tree, tmp_path):
    """A plain module.-prefixed state_dict saved with torch.save (CDCN_U_P1.pkl's layout) loads in test.py."""
    sd = torch.load(trained["out"] / "best.pt", weights_only=True)["model"]
    released = tmp_path / "CDCN_U_P1.pkl"
    torch.save({f"module.{k}": v for k, v in sd.items()}, released)
    ours = tested["out"]
    theirs = tmp_path / "theirs"
    common = ["--crop-root", str(tree["crop_root"]), "--device", "cpu", "--workers", "0", "--no-plots"]
    dum_test.main(["--checkpoint", str(released), "--out-dir", str(theirs), "--width", "0.25", "--image-size", "64",
                   "--save-threshold", *common])
    assert (theirs / "scores_test.csv").read_text() == (ours / "scores_test.csv").read_text()
    assert set(torch.load(released, weights_only=True)) == {f"module.{k}" for k in sd}  # left untouched
    broken = tmp_path / "broken.pkl"
    torch.save({f"module.{k}": v for k, v in list(sd.items())[1:]}, broken)
    with pytest.raises(SystemExit):
        dum_test.main(["--checkpoint", str(broken), "--out-dir", str(tmp_path / "b"), "--width", "0.25",
                       "--image-size", "64", *common])


def test_published_size_reference_loads_and_reproduces_mu(reference_dir, tmp_path):
    """The original's seed-0 CDCN_u weights in the released layout, through test.py's loader."""
    ref = torch.load(reference_dir / "cdcn_dum_reference_small.pt", weights_only=True)
    path = tmp_path / "CDCN_U_P1.pkl"
    torch.save({f"module.{k}": v for k, v in ref["state_dict"].items()}, path)
    args = dum_test.build_parser().parse_args(["--checkpoint", str(path)])
    model, arch, _ = dum_test.load_model(args, path, torch.device("cpu"))
    assert arch == {"model": "cdcn_u", "theta": 0.7, "width": 1.0, "image_size": 256}
    with torch.no_grad():
        mu = model(ref["input"]).mu
    assert torch.allclose(mu, ref["mu"], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_torchrun_two_process_smoke(tree, tmp_path, repo_root):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(repo_root / "DUM" / "train.py"), "--crop-root", str(tree["crop_root"]), "--out-dir", str(out),
           "--epochs", "1", *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and not any(k.startswith("module.") for k in ckpt["model"])
    assert (out / "log_rank1.txt").is_file()
    rows = _read_csv(out / "metrics.csv")
    assert len(rows) == 1 and math.isfinite(float(rows[0]["dev_acer"]))
    dev_rows = _read_csv(out / "dev_scores.csv")
    assert len(dev_rows) == len(read_protocol(tree["crop_root"] / "protocols/Protocol_1/Dev.txt"))
    # Dev was scored with exactly the saved weights: each rank's BatchNorm statistics drift apart
    # during the epoch, and rank 1's half of the videos used to be scored with its own.
    test_out = tmp_path / "test"
    dum_test.main(["--checkpoint", str(out / "best.pt"), "--crop-root", str(tree["crop_root"]), "--protocol", "1",
                   "--out-dir", str(test_out), "--device", "cpu", "--workers", "0", "--frame-batch", "4",
                   "--no-plots"])
    single = {r["video_id"]: float(r["score"]) for r in _read_csv(test_out / "scores_dev.csv")}
    assert {r["video_id"] for r in dev_rows} == set(single)
    for r in dev_rows:
        assert float(r["score"]) == pytest.approx(single[r["video_id"]], rel=1e-6, abs=1e-12), r["video_id"]


def test_every_frame_with_a_crop_is_scored_and_chunking_changes_nothing(tree, tmp_path):
    """As the original, every frame with a crop is scored: a frame with an all-black depth map, or
    with none, is divided by the face template's depth sum (DUM/denominator.py) and reported; a video
    without any crop gets a NaN score (failure to acquire); frame chunking does not change scores."""
    import cv2
    import numpy as np

    from DUM.dataset import DepthEvalDataset
    from DUM.denominator import FACE_TEMPLATE_MEAN_DEPTH
    from DUM.engine import depth_outputs, evaluate
    from networks import build_depth_net

    crop = tmp_path / "crop"
    shutil.copytree(tree["crop_root"], crop)
    dirs = split_dirs(crop, "dev")
    items = read_protocol(crop / "protocols" / "Protocol_1" / "Dev.txt")
    v0, v1, v2 = items[0].video_id, items[1].video_id, items[2].video_id
    black = np.zeros((8, 8), np.uint8)
    f0 = sorted(p.name for p in (dirs["img"] / v0).iterdir())
    cv2.imwrite(str(dirs["depth"] / v0 / depth_name(f0[0])), black)
    for name in (p.name for p in (dirs["depth"] / v1).iterdir()):
        cv2.imwrite(str(dirs["depth"] / v1 / name), black)
    (dirs["depth"] / v0 / depth_name(f0[1])).unlink()       # no map at all
    shutil.rmtree(dirs["img"] / v2)                          # no crop: cannot be scored
    torch.manual_seed(0)
    model = build_depth_net("cdcn_u", width=0.25, image_size=64).eval()
    ds = DepthEvalDataset(items, crop, "dev", 64, 8)
    one = evaluate(model, ds, torch.device("cpu"), frame_batch=1, workers=0)
    many = evaluate(model, ds, torch.device("cpu"), frame_batch=64, workers=0)
    scores = {r.video_id: r.score for r in one.rows}
    assert math.isnan(scores[v2]) and all(math.isfinite(s) for v, s in scores.items() if v != v2)
    assert len([f for f in one.frames if f[0] == v0]) == len(f0)
    assert {f"{v0}/{f0[0]}", f"{v0}/{f0[1]}"} <= set(one.fallback)
    assert all(f"{v1}/{p.name}" in one.fallback for p in (dirs["img"] / v1).iterdir())
    # the template frame's score is sum(mu) over the face template's depth sum
    video = ds[[it.video_id for it in ds.items].index(v0)]
    assert video["frames"][0] == f0[0] and video["depth"][0].sum() == 0
    with torch.no_grad():
        mu = depth_outputs(model(normalize_image(video["images"][:1])))[1]
    expected = mu.float().sum().item() / (FACE_TEMPLATE_MEAN_DEPTH * 8 * 8)
    got = [s for v, f, s in one.frames if (v, f) == (v0, f0[0])][0]
    assert got == pytest.approx(expected, rel=1e-5)
    reasons = " ".join(r for _, r in one.problems)
    assert "all-black depth map" in reasons and "face template" in reasons
    for a, b in zip(one.rows, many.rows):
        assert a.video_id == b.video_id and (math.isnan(a.score) and math.isnan(b.score)
                                             or a.score == pytest.approx(b.score, rel=1e-5))


def test_model_selection_prefers_lower_acer_then_eer_then_later_epoch():
    best = {"dev_acer": 0.2, "dev_eer": 0.1, "epoch": 5}
    for new, better in [({"dev_acer": 0.1, "dev_eer": 0.5}, True), ({"dev_acer": 0.2, "dev_eer": 0.05}, True),
                        ({"dev_acer": 0.2, "dev_eer": 0.1}, False), ({"dev_acer": 0.3, "dev_eer": 0.0}, False)]:
        assert dum_train.is_better(new, best) is better
        assert dum_train.takes_best(new, best) is (better or new == {"dev_acer": 0.2, "dev_eer": 0.1})
    assert dum_train.is_better({"dev_acer": 0.9, "dev_eer": 0.9}, None)
    assert dum_train.takes_best({"dev_acer": 0.9, "dev_eer": 0.9}, None)


def test_best_pt_takes_the_later_of_equal_dev_results_and_patience_waits_for_a_better_one(tree, tmp_path, monkeypatch):
    """dev ACER per epoch 0.2, 0.1, 0.1, 0.1 (EER equal): best.pt is epoch 4, the last of the tie, while
    --patience 2 stops after two evaluations without a strictly better result."""
    real_evaluate_dev, acers = dum_train.evaluate_dev, {1: 0.2, 2: 0.1, 3: 0.1, 4: 0.1, 5: 0.1}

    def canned(net, data, args, dist, epoch, out_dir):
        dev, result = real_evaluate_dev(net, data, args, dist, epoch, out_dir)
        return {**dev, "dev_acer": acers[epoch], "dev_eer": 0.05}, result

    monkeypatch.setattr(dum_train, "evaluate_dev", canned)
    out = tmp_path / "run"
    result = _train(tree["crop_root"], out, "--epochs", "5", "--patience", "2")
    rows = _read_csv(out / "metrics.csv")
    assert result["epochs_run"] == 4 and [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["best"]) for r in rows] == [1, 1, 1, 1]
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["epoch"] == 4 and best["since_best"] == 2
    assert best["threshold"] == pytest.approx(float(rows[3]["dev_threshold"]))


def _perturbed_checkpoint(src: Path, dst: Path, seed: int) -> None:
    """``src`` with seeded noise added to every float weight: another model, so another fold result."""
    obj = torch.load(src, weights_only=True)
    g = torch.Generator().manual_seed(seed)
    obj["model"] = {k: v + 0.05 * v.abs().mean() * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                    for k, v in obj["model"].items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, dst)


def _cdcn_rates(scores_csv: Path, threshold: float) -> tuple[float, float, float]:
    """APCER, BPCER, ACER by hand: bona fide iff score > threshold, attacks pooled."""
    rows = _read_csv(scores_csv)
    assert all(math.isfinite(float(r["score"])) for r in rows)
    live = [float(r["score"]) for r in rows if r["label"] == "1"]
    attack = [float(r["score"]) for r in rows if r["label"] == "0"]
    apcer = sum(s > threshold for s in attack) / len(attack)
    bpcer = sum(s <= threshold for s in live) / len(live)
    return apcer, bpcer, (apcer + bpcer) / 2


def test_protocol_3_all_folds_mean_and_std(trained, tree, tmp_path):
    """Six folds that differ (own model, own test list), one checkpoint per fold via '{fold}': every
    fold's rates and the summary's mean and sample std equal the values computed here by hand."""
    src = tree["crop_root"] / "protocols" / "Protocol_1"
    proto = tmp_path / "protocols" / "Protocol_3"
    proto.mkdir(parents=True)
    test_lines = (src / "Test.txt").read_text().splitlines()
    for k in range(1, 7):
        shutil.copy(src / "Dev.txt", proto / f"Dev_{k}.txt")
        shutil.copy(src / "Train.txt", proto / f"Train_{k}.txt")
        kept = [line for i, line in enumerate(test_lines) if i != k]  # fold k drops one test video
        (proto / f"Test_{k}.txt").write_text("\n".join(kept) + "\n")
        _perturbed_checkpoint(trained["out"] / "best.pt", tmp_path / f"F{k}" / "best.pt", seed=k)
    out = tmp_path / "p3"
    res = dum_test.main(["--checkpoint", str(tmp_path / "F{fold}" / "best.pt"), "--crop-root", str(tree["crop_root"]),
                         "--protocol-dir", str(tmp_path / "protocols"), "--protocol", "3", "--all-folds",
                         "--out-dir", str(out), "--device", "cpu", "--workers", "0", "--no-plots"])
    assert len(res["folds"]) == 6 and res["summary"]["n_folds"] == 6
    by_hand = {"APCER": [], "BPCER": [], "ACER": []}
    for k in range(1, 7):
        fold = out / f"fold_{k}"
        assert len(_read_csv(fold / "scores_test.csv")) == len(test_lines) - 1
        threshold = json.loads((fold / "threshold.json").read_text())["threshold"]
        for name, value in zip(("APCER", "BPCER", "ACER"), _cdcn_rates(fold / "scores_test.csv", threshold)):
            by_hand[name].append(value)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["std_ddof"] == 1
    for name, values in by_hand.items():
        entry = summary["metrics"][f"cdcn_compatible.{name}"]
        mean = sum(values) / 6
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 5)
        assert entry["values"] == pytest.approx(values, abs=1e-12), name
        assert entry["mean"] == pytest.approx(mean, abs=1e-12) and entry["std"] == pytest.approx(std, abs=1e-12), name
    assert len(set(by_hand["ACER"])) > 1  # the folds really differ, so a wrong mean or std shows
    assert (out / "summary.txt").is_file()


def test_shell_scripts_pass_flags_through(trained, tree, tmp_path, repo_root):
    """train.sh and test.sh run for real: their environment values and the original settings reach the
    scripts' config, and flags given after them override (argparse keeps the last)."""
    env = dict(os.environ, PYTHON=sys.executable, CROP_ROOT=str(tree["crop_root"]), PROTOCOL="1", GPUS="",
               OUT_DIR=str(tmp_path / "sh_train"), OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(repo_root / "DUM" / "train.sh"), *TINY, "--epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "sh_train" / "config.json").read_text())
    assert Path(config["crop_root"]) == tree["crop_root"] and config["protocol"] == 1 and config["model"] == "cdcn_u"
    assert (config["lr"], config["weight_decay"], config["step_size"], config["gamma"]) == (1e-4, 5e-5, 500, 0.5)
    assert (config["kl_lambda"], config["gen_weight"], config["ratio"]) == (0.001, 0.1, 0.75)
    assert (config["epochs"], config["batch_size"], config["image_size"]) == (1, 8, 64)  # overridden after
    assert [r["epoch"] for r in _read_csv(tmp_path / "sh_train" / "metrics.csv")] == ["1"]

    env.update(CHECKPOINT=str(trained["out"] / "best.pt"), OUT_DIR=str(tmp_path / "sh_test"))
    proc = subprocess.run(["bash", str(repo_root / "DUM" / "test.sh"), "--device", "cpu", "--workers", "0",
                           "--no-plots", "--frame-batch", "4"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "sh_test" / "config.json").read_text())
    assert Path(config["checkpoint"]) == trained["out"] / "best.pt" and config["protocol"] == 1
    assert Path(config["crop_root"]) == tree["crop_root"] and config["no_plots"] is True
    assert (tmp_path / "sh_test" / "scores_test.csv").is_file() and not (tmp_path / "sh_test" / "roc.png").exists()


def test_sync_bn_converts_under_ddp_and_refuses_cpu():
    from utils.dist import DistInfo
    from utils.io import InputError

    args = dum_train.build_parser().parse_args(["--sync-bn"])
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert dum_train.wrap_ddp(net, args, DistInfo()) is net  # one process: plain BatchNorm, nothing to sync
    with pytest.raises(InputError, match="--sync-bn needs CUDA"):
        dum_train.wrap_ddp(net, args, DistInfo(rank=0, world_size=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="--amp is CUDA only: needs a GPU")
def test_amp_training_scores_dev_in_float32(tree, tmp_path):
    """Under --amp the training steps run in float16, but the dev scores behind the stored threshold
    are float32: exactly what test.py (float32) gives for the saved best.pt."""
    out = tmp_path / "amp"
    args = [a if a != "cpu" else "cuda" for a in TINY]
    dum_train.main(["--crop-root", str(tree["crop_root"]), "--protocol", "1", "--out-dir", str(out), *args,
                    "--epochs", "1", "--amp"])
    test_out = tmp_path / "test"
    dum_test.main(["--checkpoint", str(out / "best.pt"), "--crop-root", str(tree["crop_root"]), "--protocol", "1",
                   "--out-dir", str(test_out), "--device", "cuda", "--workers", "0", "--frame-batch", "4",
                   "--no-plots"])
    single = {r["video_id"]: float(r["score"]) for r in _read_csv(test_out / "scores_dev.csv")}
    for r in _read_csv(out / "dev_scores.csv"):
        assert float(r["score"]) == pytest.approx(single[r["video_id"]], rel=2e-4), r["video_id"]  # fp16: ~1e-3


def test_channels_last_trains_like_the_default_layout(trained, tree, tmp_path):
    """--channels-last changes the memory layout only: the same losses and weights as the default run
    (to float32 rounding: NHWC convolutions sum in another order), a checkpoint test.py loads as usual."""
    out = tmp_path / "cl"
    _train(tree["crop_root"], out, "--epochs", "2", "--channels-last")
    ra, rb = _read_csv(trained["out"] / "metrics.csv"), _read_csv(out / "metrics.csv")
    # epoch 1: the same weights, NHWC rounding only; epoch 2: after one Adam step, whose first update is
    # about lr * sign(gradient), so rounding that flips a near-zero gradient moves that weight by 2 lr
    for (a, b), rel in zip(zip(ra, rb), (1e-5, 1e-2)):
        for col in ("loss", "mse", "cdl", "kl"):
            assert float(b[col]) == pytest.approx(float(a[col]), rel=rel, abs=1e-6), (a["epoch"], col)
    a = torch.load(trained["out"] / "last.pt", weights_only=True)["model"]
    b = torch.load(out / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    # two Adam steps at lr 1e-4 move a weight by at most about 2e-4 however the rounding falls
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-3
    model = build_depth_net("CDCN_U", width=0.25, image_size=64)
    model.load_state_dict(b)  # an NHWC-strided state_dict loads into the default layout


def test_amp_flag_takes_a_precision_and_plain_amp_means_fp16():
    parse = dum_train.build_parser().parse_args
    assert parse([]).amp == "off"
    assert parse(["--amp"]).amp == "fp16"
    assert parse(["--amp", "bf16"]).amp == "bf16"
    with pytest.raises(SystemExit):
        parse(["--amp", "fp8"])


def test_compile_trains_through_dynamo_and_saves_plain_keys(trained, tree, tmp_path, monkeypatch):
    """--compile: the training forward goes through torch.compile (Dynamo's graph capture with the eager
    backend here: Inductor's C++ code generation takes minutes on a small CPU), dev is scored by the
    plain model, and the checkpoint holds the plain keys (no ``_orig_mod.``) with the same losses."""
    calls = []

    def eager_compile(model, enabled, mode=None):
        calls.append(enabled)
        return torch.compile(model, backend="eager") if enabled else model

    monkeypatch.setattr(dum_train, "maybe_compile", eager_compile)
    out = tmp_path / "compiled"
    _train(tree["crop_root"], out, "--epochs", "2", "--compile")
    assert calls == [True]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert not any("_orig_mod" in k for k in ckpt["model"])
    ra, rb = _read_csv(trained["out"] / "metrics.csv"), _read_csv(out / "metrics.csv")
    for (a, b), rel in zip(zip(ra, rb), (1e-5, 1e-2)):  # as for --channels-last
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=rel), a["epoch"]
