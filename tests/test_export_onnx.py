"""export_onnx.py: folded plain-conv graph, metadata, ONNX Runtime parity on real face crops, and
predict.py on the .onnx giving the decisions it gives on the .pt."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import export_onnx
import predict
import predict_testdata as ptd
from networks.cdc import Conv2d_cd

CDCN_U_OPS = {"Conv", "BatchNormalization", "Relu", "MaxPool", "Resize", "Concat", "Squeeze", "Unsqueeze",
              "Shape", "Slice", "Gather", "Cast", "Constant", "Identity", "Reshape"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, samples_dir):
    return ptd.tiny_model(tmp_path_factory.mktemp("tiny_model"), samples_dir)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, samples_dir, tiny):
    out = tmp_path_factory.mktemp("onnx") / "cdcn_u.onnx"
    with ptd.torch_threads(1):
        summary = export_onnx.main(["--checkpoint", str(tiny["checkpoint"]), "--out", str(out),
                                    "--check-images", str(samples_dir)])
    return out, summary


def expected_convs(checkpoint) -> int:
    """Convolutions of the PyTorch model: one nn.Conv2d inside each Conv2d_cd, plus the plain heads."""
    from DUM.inference import load_torch_model

    net = load_torch_model(checkpoint).net
    assert all(len([c for c in m.children() if isinstance(c, torch.nn.Conv2d)]) == 1
               for m in net.modules() if isinstance(m, Conv2d_cd))
    return sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def test_graph_has_only_folded_plain_convolutions(exported, tiny):
    import onnx

    out, summary = exported
    model = onnx.load(str(out))
    ops = Counter(n.op_type for n in model.graph.node)
    assert set(ops) <= CDCN_U_OPS, ops
    assert ops["Conv"] == expected_convs(tiny["checkpoint"]) == 14  # 12 CD convs + mu and logvar heads
    assert summary["convs"] == 14 and [o.name for o in model.graph.output] == ["mu", "logvar"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis


def test_metadata_and_dynamic_batch(exported, tiny):
    import onnxruntime as ort

    out, _ = exported
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["image_size"] == "64" and meta["map_size"] == "8" and meta["model"] == "cdcn_u"
    assert float(meta["threshold"]) == pytest.approx(tiny["threshold"])
    assert meta["threshold_source"] == ptd.THRESHOLD_SOURCE
    for batch in (1, 5):
        mu, logvar = session.run(["mu", "logvar"], {"x": np.zeros((batch, 3, 64, 64), np.float32)})
        assert mu.shape == logvar.shape == (batch, 8, 8)


def test_onnx_runtime_agrees_with_pytorch(exported, capsys):
    _, summary = exported
    assert summary["check_inputs"].startswith("3 face crops")  # the three sample photos, faces found
    for name in ("mu", "logvar"):
        c = summary["check"][name]
        assert c["relative"] < 1e-4 and c["max_abs_diff"] < 1e-4 * c["max_abs_value"]
    assert summary["check"]["ok"]


def test_parity_flags_a_difference():
    ref = {"mu": np.array([[1.0, -2.0]]), "logvar": np.array([[0.5, 0.5]])}
    assert export_onnx.parity(ref, {"mu": ref["mu"] + 1e-6, "logvar": ref["logvar"]}, 1e-4)["ok"]
    bad = export_onnx.parity(ref, {"mu": ref["mu"] + 1e-3, "logvar": ref["logvar"]}, 1e-4)
    assert not bad["ok"] and not bad["mu"]["ok"] and bad["logvar"]["ok"]
    assert bad["mu"]["max_abs_diff"] == pytest.approx(1e-3) and bad["mu"]["relative"] == pytest.approx(5e-4)


def test_legacy_exporter_gives_the_same_graph(tmp_path, tiny):
    with ptd.torch_threads(1):
        summary = export_onnx.main(["--checkpoint", str(tiny["checkpoint"]), "--out", str(tmp_path / "ts.onnx"),
                                    "--exporter", "torchscript"])
    assert summary["exporter"] == "torchscript" and summary["convs"] == 14 and summary["check"]["ok"]
    assert set(summary["ops"]) <= CDCN_U_OPS and summary["ops"]["Conv"] == 14


def test_predict_on_onnx_matches_pytorch(tmp_path, exported, samples_dir, tiny, capsys):
    out, _ = exported
    photos = [str(samples_dir / name) for name in ptd.SAMPLES]
    summary = predict.main(["--checkpoint", str(out), *photos, "--out-dir", str(tmp_path / "run"),
                            "--threads", "1", "--device", "cpu"])
    assert f"from {ptd.THRESHOLD_SOURCE}" in capsys.readouterr().out
    rows = {r.file.rsplit("/", 1)[-1]: r for r in summary["rows"] if r.kind == "face"}
    for name, decision in ptd.SAMPLES.items():
        assert rows[name].decision == decision
        assert float(rows[name].score) == pytest.approx(tiny["scores"][name], rel=1e-4)
