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
