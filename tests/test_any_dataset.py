"""One CSV protocol with a split column through DUM/train.py and DUM/test.py, and --protocol errors
that name the flag to change (data/protocol_args.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dum_testdata as td
from data import protocol_args as pa
from data.protocols import oulu_label_and_type
from DUM import test as dum_test
from DUM import train as dum_train
from utils.io import InputError

TINY = ["--image-size", "64", "--width", "0.25", "--batch-size", "8", "--ratio", "0.75", "--workers", "0",
        "--device", "cpu", "--eval-start", "1", "--eval-every", "1", "--frame-batch", "4"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, samples_dir):
    torch.set_num_threads(1)
    return td.build_tree(tmp_path_factory.mktemp("csvproto"), samples_dir)


def write_csv(path: Path, videos: dict, splits=("train", "dev", "test")) -> Path:
    rows = ["path,label,attack_type,subject,split"]
    for split in splits:
        for video in videos[split]:
            label, attack = oulu_label_and_type(video)
            rows.append(f"clips/{video}.avi,{label},{attack},u{video.split('_')[2]},{split}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_protocol_arg_takes_numbers_and_files():
    assert pa.protocol_arg("3") == 3 and pa.protocol_arg("data/my.csv") == "data/my.csv"
    with pytest.raises(Exception, match="1-4"):
        pa.protocol_arg("7")
    assert pa.protocol_tag(3, 2) == "p3_2" and pa.protocol_tag("x/mydata.csv") == "mydata"
    assert pa.default_out_dir(1, None, "CDCN_U_P1", "cdcn_u") == Path("CDCN_U_P1")
    assert pa.default_out_dir("x/mydata.csv", None, "CDCN_U_P1", "cdcn_u") == Path("runs/mydata/cdcn_u")
    assert pa.generated_prefix("x/mydata.csv") == "p0" and pa.generated_list_name("x/mydata.csv") == "mydata_g.csv"


def test_one_csv_trains_and_tests(tree, tmp_path, monkeypatch):
    """--protocol mydata.csv alone: train rows for training, dev rows for selection, test rows for testing;
    outputs under runs/mydata/ and the CSV recorded instead of a protocol number."""
    csv_path = write_csv(tmp_path / "mydata.csv", tree["videos"])
    monkeypatch.chdir(tmp_path)
    result = dum_train.main(["--crop-root", str(tree["crop_root"]), "--protocol", str(csv_path), *TINY,
                             "--epochs", "1"])
    out = tmp_path / "runs" / "mydata" / "cdcn_u"
    assert Path(result["out_dir"]).resolve() == out
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["config"]["protocol"] == str(csv_path)
    assert ckpt["config"]["train_list"] == ckpt["config"]["dev_list"] == str(csv_path)
    assert ckpt["dev_metrics"]["dev_videos"] == len(tree["videos"]["dev"])

    metrics = dum_test.main(["--checkpoint", str(out / "best.pt"), "--crop-root", str(tree["crop_root"]),
                             "--protocol", str(csv_path), "--workers", "0", "--device", "cpu", "--no-plots"])
    saved = json.loads((tmp_path / "runs" / "mydata" / "test" / "metrics.json").read_text())
    assert saved["inputs"]["protocol"] == str(csv_path) and saved["inputs"]["eval"] == str(csv_path)
    assert metrics["inputs"]["dev"] == str(csv_path)


def test_csv_with_generated_rows_is_preferred_for_training(tree, tmp_path):
    csv_path = write_csv(tmp_path / "mydata.csv", tree["videos"])
    protocols = tmp_path / "protocols"
    protocols.mkdir()
    args = dum_train.build_parser().parse_args(["--protocol", str(csv_path), "--protocol-dir", str(protocols)])
    assert dum_train.protocol_lists(args) == (csv_path, csv_path)
    (protocols / "mydata_g.csv").write_text(csv_path.read_text() + "p0_0_1_0,1,,,train\n")
    assert dum_train.protocol_lists(args) == (protocols / "mydata_g.csv", csv_path)


def test_errors_name_the_flag(tree, tmp_path):
    no_dev = write_csv(tmp_path / "nodev.csv", tree["videos"], splits=("train", "test"))
    with pytest.raises(InputError, match="no row with split 'dev'.*--dev-list"):
        dum_train.protocol_lists(dum_train.build_parser().parse_args(["--protocol", str(no_dev)]))
    with pytest.raises(InputError, match="--protocol missing.csv: no such file"):
        dum_train.protocol_lists(dum_train.build_parser().parse_args(["--protocol", "missing.csv"]))
    # OULU number, explicit dev list, no protocol folder: the error points at the flags to pass
    dev = tree["crop_root"] / "protocols" / "Protocol_1" / "Dev.txt"
    args = dum_test.build_parser().parse_args(["--checkpoint", "x.pt", "--crop-root", str(tmp_path),
                                               "--dev-list", str(dev)])
    with pytest.raises(InputError, match="--test-list FILE"):
        dum_test.lists_for(args, None)
    with pytest.raises(SystemExit):
        dum_train.build_parser().parse_args(["--protocol", "5"])


class CountingNet(torch.nn.Module):
    """A real depth network that counts its forward passes."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_dev_evaluation_batches_frames_across_videos(tree):
    """Ten dev videos of two frames: one forward pass per 64 frames, not one per video; same scores."""
    from data.protocols import read_protocol
    from DUM.dataset import DepthEvalDataset
    from DUM.engine import evaluate
    from networks import build_depth_net

    torch.manual_seed(0)
    net = CountingNet(build_depth_net("cdcn_u", width=0.25, image_size=64).eval())
    items = read_protocol(tree["crop_root"] / "protocols" / "Protocol_1" / "Dev.txt")
    ds = DepthEvalDataset(items, tree["crop_root"], "dev", 64, 8)
    frames = sum(len(f) for f in ds.frames)
    assert len(ds) == 10 and frames == 20
    batched = evaluate(net, ds, torch.device("cpu"), frame_batch=64, workers=0)
    assert net.calls == 1
    net.calls = 0
    evaluate(net, ds, torch.device("cpu"), frame_batch=8, workers=0)
    assert net.calls == 3  # 8 + 8 + 4 frames
    net.calls = 0
    single = evaluate(net, ds, torch.device("cpu"), frame_batch=1, workers=0)
    assert net.calls == frames
    assert [r.video_id for r in batched.rows] == [r.video_id for r in single.rows]
    for a, b in zip(batched.rows, single.rows):
        assert a.score == pytest.approx(b.score, rel=1e-5)
    assert batched.frames[0][:2] == single.frames[0][:2] and len(batched.frames) == frames


# --------------------------------------------------------------------------------- defaults that fit any dataset
def test_iterations_stretch_the_whole_schedule():
    from utils.schedule import iteration_schedule

    # OULU-NPU P1: 25 batches per epoch, the paper's 1600/200/50/500 epochs ~ 40,000 iterations
    assert iteration_schedule(40_000, 25, 1600, eval_start=200, eval_every=50, step_size=500) == {
        "epochs": 1600, "eval_start": 200, "eval_every": 50, "step_size": 500}
    # 80 rows, 2 batches per epoch: a 4,000-iteration budget keeps the proportions
    assert iteration_schedule(4_000, 2, 1600, eval_start=200, eval_every=50, step_size=500) == {
        "epochs": 2000, "eval_start": 250, "eval_every": 62, "step_size": 625}
    assert iteration_schedule(3, 2, 1600, eval_start=200, eval_every=50) == {"epochs": 2, "eval_start": 1,
                                                                             "eval_every": 1}


def test_train_iterations_budget(tree, tmp_path):
    """10 real training videos, 6 real per batch: with --epoch-batches real 2 batches per epoch, so
    --iterations 6 runs 3 epochs; by the original's rule (max(10 real, 4 generated) // 6) 1 batch, 6 epochs."""
    for rule, epochs in (("real", 3), ("original", 6)):
        out = tmp_path / rule
        result = dum_train.main(["--crop-root", str(tree["crop_root"]), "--protocol", "1", "--out-dir", str(out),
                                 *TINY, "--iterations", "6", "--threads", "1", "--epoch-batches", rule])
        assert result["epochs_run"] == epochs
        config = json.loads((out / "config.json").read_text())
        assert config["epochs"] == epochs and config["iterations"] == 6 and config["eval_every"] == 1


def test_loader_workers_fit_the_machine(monkeypatch):
    import os

    import train_generator
    import train_lightcnn
    from utils.schedule import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers() == 1 and default_workers(8) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == 4 and default_workers(8) == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a 2-core machine: one loader worker, not 4 or 8
    for parser in (dum_train.build_parser(), dum_test.build_parser(), train_generator.build_parser(),
                   train_lightcnn.build_parser()):
        assert parser.get_default("workers") == 1 and parser.get_default("threads") == 0


def test_attack_types_come_from_the_data(tmp_path, caplog):
    from generation.dataset import attack_types_in_list

    one = tmp_path / "one.txt"
    one.write_text("a/a_1_scene.jpg s1 1 1\nb/b_1_scene.jpg s1 0 2\n")
    with caplog.at_level("WARNING"):
        assert attack_types_in_list(one) == 1
    assert "type classification loss is 0" in caplog.text
    oulu = tmp_path / "oulu.txt"
    oulu.write_text("a/a_1_scene.jpg 01 1 1\n" + "".join(f"v{f}/v{f}_1_scene.jpg 01 0 {f}\n" for f in (2, 3, 5)))
    caplog.clear()
    assert attack_types_in_list(oulu) == 4 and "one attack type" not in caplog.text
    import train_generator

    assert train_generator.build_parser().get_default("attack_types") == 0  # 0 = from the list


def test_generated_faces_framed_and_saved_like_real_crops(samples_dir, tmp_path):
    """The generator learns faces cut at the depth network's dev/test crop scale and generated.py
    writes them at the real crops' JPEG quality."""
    import cv2
    import numpy as np

    import generated
    import train_generator
    from data.boxes import Box, crop_face, write_box
    from DUM.make_dataset import crop_dataset
    from generation.dataset import GenDataset

    crop_args = crop_dataset.build_parser().parse_args([])
    gen_args = train_generator.build_parser().parse_args([])
    assert gen_args.crop_scale == crop_args.test_scale
    assert crop_args.scale_range[0] <= gen_args.crop_scale <= crop_args.scale_range[1]
    assert generated.build_parser().get_default("jpeg_quality") == crop_args.jpeg_quality == 95

    image = cv2.imread(str(samples_dir / "image_T1.jpg"))
    box = Box(140, 140, 160, 190)
    for name, domain, fid in (("live", 1, 1), ("spoof", 0, 2)):
        (tmp_path / "train_img_flod" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train_img_flod" / name / f"{name}_1_scene.png"), image)
        write_box(tmp_path / "train_bbox_flod" / name / f"{name}_1_scene.dat", box)
    (tmp_path / "list.txt").write_text("live/live_1_scene.png s 1 1\nspoof/spoof_1_scene.png s 0 2\n")
    ds = GenDataset(tmp_path, tmp_path / "list.txt", image_size=64, attack_types=1, crop_scale=gen_args.crop_scale)
    face = (ds[0]["spoof"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    expected = cv2.cvtColor(crop_face(image, box, scale=1.3, size=64), cv2.COLOR_BGR2RGB)
    assert np.abs(face.astype(int) - expected.astype(int)).max() <= 1


def test_lightcnn_cpu_preset(samples_dir, tmp_path):
    """--preset cpu: a width-0.125 network with Adam (learns 3 identities in ~60 iterations on one core,
    README); explicit flags still win; the export is what train_generator.py reads with --ip-width."""
    import train_lightcnn
    from networks.light_cnn import load_lightcnn
    from test_lightcnn_train import build_faces

    args = train_lightcnn.parse_args(["--preset", "cpu", "--data-root", "x"])
    assert (args.width, args.batch_size, args.optimizer, args.lr) == (0.125, 16, "adam", 1e-3)
    assert train_lightcnn.parse_args(["--preset", "cpu", "--data-root", "x", "--width", "0.25"]).width == 0.25
    assert train_lightcnn.parse_args(["--data-root", "x"]).width == 1.0
    faces = tmp_path / "faces"
    build_faces(faces, samples_dir)
    out = tmp_path / "run"
    result = train_lightcnn.main(["--preset", "cpu", "--data-root", str(faces), "--out-dir", str(out), "--epochs", "1",
                                  "--workers", "0", "--threads", "1", "--device", "cpu"])
    assert result["classes"] == 3 and result["epoch"] == 1
    net = load_lightcnn(out / "LightCNN_29Layers_V2_checkpoint.pth.tar", width=0.125)
    assert sum(p.numel() for p in net.parameters()) < 500_000
