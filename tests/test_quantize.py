"""export_onnx.py --int8 (DUM/quantize.py): a real static quantization of a tiny trained model,
calibrated on dev crops of the tiny crop tree, heads kept in float, agreement and ACER change reported."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import dum_testdata as td
import export_onnx
import predict
import predict_testdata as ptd
from DUM.dataset import normalize_image
from DUM.quantize import calibration_batches, compare, eval_dataset, float_node_names, name_nodes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, samples_dir):
    return ptd.tiny_model(tmp_path_factory.mktemp("tiny_model"), samples_dir)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, samples_dir):
    tree = td.build_tree(tmp_path_factory.mktemp("int8_tree"), samples_dir)
    p1 = tree["crop_root"] / "protocols" / "Protocol_1"
    return dict(tree, dev=p1 / "Dev.txt", test=p1 / "Test.txt")


def int8_argv(tiny, tree, out, *extra) -> list[str]:
    return ["--checkpoint", str(tiny["checkpoint"]), "--out", str(out), "--int8", "--crop-root", str(tree["crop_root"]),
            "--calibration-list", str(tree["dev"]), "--test-list", str(tree["test"]), "--exporter", "torchscript",
            *extra]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny, tree):
    out = tmp_path_factory.mktemp("int8") / "cdcn_u.onnx"
    with ptd.torch_threads(1):
        summary = export_onnx.main(int8_argv(tiny, tree, out, "--min-agreement", "0", "--max-acer-change", "100"))
    return out, summary


def test_int8_graph_is_quantized_with_float_heads(quantized):
    import onnx
    from onnx import numpy_helper

    out, summary = quantized
    int8 = out.with_name("cdcn_u.int8.onnx")
    assert summary["int8"]["ok"] and summary["int8"]["out"] == str(int8) and int8.is_file()
    model = onnx.load(str(int8))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 14 and ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    heads = set(summary["int8"]["float_layers"]["heads"])
    assert len(heads) == 2
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        w = conv.input[1]
        if conv.name in heads:  # float weights straight from an initializer, float output
            assert w in inits and inits[w].dtype == np.float32
            assert not any(conv.output[0] in n.input for n in model.graph.node if n.op_type == "QuantizeLinear")
        else:  # int8 weights with one scale per output channel, on dequantized uint8 activations
            dq = producer[w]
            assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int8
            assert inits[dq.input[1]].shape == (inits[dq.input[0]].shape[0],)
            assert producer[conv.input[0]].op_type == "DequantizeLinear"
            assert inits[producer[conv.input[0]].input[2]].dtype == np.uint8  # zero point type


def test_int8_report_and_metadata(quantized, tree):
    import onnxruntime as ort

    out, summary = quantized
    cmp = summary["int8"]
    assert cmp["test_frames"]["frames"] == len(td.split_videos("test")) * td.FRAMES_PER_VIDEO["test"] == 20
    assert cmp["dev_frames"]["frames"] == 20
    assert cmp["calibration_frames"] == 20  # every dev frame (fewer than --calibration-frames)
    for split in ("dev", "test"):
        f = cmp[f"{split}_frames"]
        assert 0.0 <= f["agreement"] <= 1.0 and float(f["agreement"] * f["frames"]).is_integer()
        assert f["score_correlation"] > 0.9  # int8 follows the float scores
    for key in ("dev_ACER", "test_ACER", "test_ACER_iso"):
        assert cmp[f"{key}_change_points"] == pytest.approx(100 * (cmp["int8"][key] - cmp["fp32"][key]))
    meta = ort.InferenceSession(str(out.with_name("cdcn_u.int8.onnx")),
                                providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert float(meta["threshold"]) == pytest.approx(cmp["int8"]["threshold"])
    assert "int8 model's scores" in meta["threshold_source"] and "per channel" in meta["quantization"]
    assert meta["image_size"] == "64"


def test_predict_runs_on_the_int8_model(tmp_path, quantized, samples_dir):
    out, _ = quantized
    photos = [str(samples_dir / name) for name in ptd.SAMPLES]
    summary = predict.main(["--checkpoint", str(out.with_name("cdcn_u.int8.onnx")), *photos,
                            "--out-dir", str(tmp_path / "run"), "--threads", "1", "--device", "cpu"])
    assert summary["faces_scored"] == 3
    assert all(np.isfinite(float(r.score)) for r in summary["rows"] if r.kind == "face")


def test_int8_not_written_below_the_agreement_asked(tmp_path, tiny, tree):
    out = tmp_path / "m.onnx"
    with ptd.torch_threads(1), pytest.raises(SystemExit) as err:
        export_onnx.main(int8_argv(tiny, tree, out, "--min-agreement", "1.01", "--calibration-frames", "4"))
    assert err.value.code == 1
    assert out.is_file() and not out.with_name("m.int8.onnx").exists()  # the float model is fine


def test_compare_identical_models_agree_fully(quantized, tree):
    import onnxruntime as ort

    out, _ = quantized
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    cmp = compare({"fp32": session, "int8": session}, {"dev": tree["dev"], "test": tree["test"]},
                  tree["crop_root"], 64, 8)
    assert cmp["dev_frames"]["agreement"] == cmp["test_frames"]["agreement"] == 1.0
    assert cmp["dev_ACER_change_points"] == cmp["test_ACER_change_points"] == 0.0
    assert cmp["test_frames"]["max_abs_score_diff"] == 0.0


def test_float_nodes_and_calibration_batches(quantized, tree):
    import onnx

    out, _ = quantized
    proto = onnx.load(str(out))
    name_nodes(proto)
    names = [n.name for n in proto.graph.node]
    assert len(set(names)) == len(names) and all(names)
    found = float_node_names(proto, ["heads", "first"])
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert found["first"] == [convs[0].name] and set(found["heads"]) == {c.name for c in convs[-2:]}
    with pytest.raises(ValueError, match="unknown"):
        float_node_names(proto, ["tail"])
    dataset = eval_dataset(tree["dev"], tree["crop_root"], "dev", 64, 8)
    batches = calibration_batches(dataset, 7, 3)
    assert [len(b) for b in batches] == [3, 3, 1] and batches[0].dtype == np.float32
    assert batches[0].shape[1:] == (3, 64, 64) and -1.0 <= batches[0].min() and batches[0].max() <= 1.0
    every = calibration_batches(dataset, 100, 8)  # more asked than there are: each of the 20 frames once
    assert [len(b) for b in every] == [8, 8, 4]
    first = normalize_image(dataset[0]["images"]).numpy()
    np.testing.assert_array_equal(every[0][:2], first)  # video 0's two frames, as DUM/test.py reads them
    np.testing.assert_array_equal(batches[0][0], first[0])
