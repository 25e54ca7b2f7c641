"""Static int8 quantization of an exported CDCN(+DUM) graph, and what it does to the decisions.

The float32 graph of ``export_onnx.py`` (central differences and BatchNorm folded into plain
convolutions) is quantized with ONNX Runtime's static quantizer: QDQ format, uint8 activations and
int8 weights (per output channel by default; ORT's recommendation for x86 CPUs with VNNI, where
``reduce_range`` is not needed), activation ranges from a MinMax calibration on real dev crops
(frames of the dev protocol list, read as DUM/test.py reads them). Layers listed in ``float_layers``
stay in float32:

* ``heads``: the convolutions that produce mu and logvar. The score is sum(mu) / sum(depth), so
  an int8 output grid of mu would put its rounding step straight into every score;
* ``first``: the first convolution (3 input channels: little compute, and the raw pixels have the
  widest range of any activation).

:func:`compare` then scores the dev and test lists with both graphs exactly as DUM/test.py scores
them (DUM/engine.py ``evaluate``) and reports the frame decisions that agree and the change of the
dev and test ACER, each model with its own dev threshold (chosen on dev only, as always).
"""
from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from data.protocols import filter_split, read_protocol
from DUM.dataset import DepthEvalDataset, normalize_image
from DUM.engine import evaluate
from DUM.metrics import score_metrics
from utils.io import InputError

log = logging.getLogger(__name__)

FLOAT_LAYER_CHOICES = ("heads", "first")


# --------------------------------------------------------------------------------------------------
# Which nodes stay in float


def name_nodes(proto) -> None:
    """Give every node of the graph a unique name (the quantizer excludes nodes by name)."""
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def float_node_names(proto, layers: Sequence[str]) -> dict[str, list[str]]:
    """Names of the Conv nodes each entry of ``layers`` keeps in float (see the module docstring)."""
    unknown = sorted(set(layers) - set(FLOAT_LAYER_CHOICES))
    if unknown:
        raise ValueError(f"unknown float layer kinds {unknown}; choose from {FLOAT_LAYER_CHOICES}")
    nodes = list(proto.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    found: dict[str, list[str]] = {}
    if "heads" in layers:
        heads = []
        for out in proto.graph.output:  # walk back through Squeeze/Reshape/Identity to the Conv
            node = producer.get(out.name)
            while node is not None and node.op_type != "Conv":
                node = producer.get(node.input[0]) if node.input else None
            if node is None:
                raise ValueError(f"no Conv node produces the output {out.name}")
            heads.append(node.name)
        found["heads"] = heads
    if "first" in layers:
        inputs = {i.name for i in proto.graph.input}
        found["first"] = [n.name for n in nodes if n.op_type == "Conv" and n.input[0] in inputs]
    return found


# --------------------------------------------------------------------------------------------------
# Calibration data: dev frames as DUM/test.py reads them


def eval_dataset(list_path, crop_root, split: str, image_size: int, map_size: int) -> DepthEvalDataset:
    items = filter_split(read_protocol(list_path), split)
    if not items:
        raise InputError(f"{list_path}: no {split} items")
    return DepthEvalDataset(items, crop_root, split, image_size, map_size, source=str(list_path))


def calibration_batches(dataset: DepthEvalDataset, max_frames: int, batch_size: int) -> list[np.ndarray]:
    """Up to ``max_frames`` normalised frames ``[B,3,S,S]`` float32 in batches: videos spread evenly over
    the list, frames spread evenly within each video (no randomness: a rerun calibrates identically)."""
    n_videos = len(dataset)
    if n_videos == 0 or max_frames < 1:
        raise InputError("calibration: no video with a crop and a depth map in the calibration list")
    picks = np.unique(np.linspace(0, n_videos - 1, min(n_videos, max_frames)).round().astype(int))
    per_video = math.ceil(max_frames / len(picks))
    frames = []
    for v in picks:
        images = dataset[int(v)]["images"]                                          # [T,3,S,S] uint8
        keep = np.unique(np.linspace(0, len(images) - 1, min(len(images), per_video)).round().astype(int))
        frames += [images[int(k)] for k in keep]
    frames = frames[:max_frames]
    x = normalize_image(torch.stack(frames)).numpy()
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


class _BatchReader:
    """ONNX Runtime CalibrationDataReader over a list of input batches."""

    def __init__(self, batches: list[np.ndarray], input_name: str):
        self._it = iter([{input_name: b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def quantize_int8(proto, batches: list[np.ndarray], exclude: Sequence[str], per_channel: bool = True,
                  reduce_range: bool = False, tmp_dir=None):
    """The QDQ int8 onnx.ModelProto of float graph ``proto`` (named nodes), calibrated on ``batches``."""
    root = logging.getLogger()
    root.addFilter(_drop_preprocess_advice)
    try:
        return _quantize(proto, batches, exclude, per_channel, reduce_range, tmp_dir)
    finally:
        root.removeFilter(_drop_preprocess_advice)


def _drop_preprocess_advice(record: logging.LogRecord) -> bool:
    # The quantizer advises ORT's pre-processing (shape inference, BatchNorm fusion): export_onnx.py's
    # graph is already that (folded plain convolutions, static shapes but the batch axis).
    return "pre-processing before quantization" not in record.getMessage()


def _quantize(proto, batches, exclude, per_channel, reduce_range, tmp_dir):
    import onnx  # deferred: onnx and the quantizer are only needed for the int8 export
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))
        quantize_static(str(src), str(dst), _BatchReader(batches, proto.graph.input[0].name),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        # MinMax keeps only each tensor's min and max per batch (ReduceMin/ReduceMax nodes)
                        nodes_to_exclude=list(exclude), calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(str(dst))


# --------------------------------------------------------------------------------------------------
# Decisions: float32 vs int8 graph, scored as DUM/test.py scores


class _OnnxOutput(tuple):
    """What DUM/engine.py's depth_outputs reads from a CDCN_u output (mu, logvar, sample = mu)."""

    mu = property(lambda self: self[0])
    logvar = property(lambda self: self[1])
    sample = property(lambda self: self[0])


class OnnxNet(nn.Module):
    """An ONNX Runtime session behind the nn.Module interface that DUM/engine.py's evaluate() calls."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.outputs = [o.name for o in session.get_outputs()]

    def forward(self, x: torch.Tensor):
        res = [torch.from_numpy(np.asarray(r, np.float32))
               for r in self.session.run(self.outputs, {self.input_name: x.cpu().numpy().astype(np.float32)})]
        if len(res) == 1:
            return (res[0],)  # a CDCN/CDCN++ baseline: its map is the score's mu
        return _OnnxOutput((res[0], res[1]))


def _frame_decisions(frames, threshold: float) -> np.ndarray:
    return np.array([s > threshold for _, _, s in frames], dtype=bool)


def compare(sessions: dict, lists: dict, crop_root, image_size: int, map_size: int, frame_batch: int = 16) -> dict:
    """Score ``lists`` ({"dev": path, "test": path or None}) with each of ``sessions`` ({"fp32": s,
    "int8": s}); per model its dev threshold, dev ACER and test ACER (both metric rows), and the frame
    decisions of int8 that agree with fp32's, each at its own dev threshold and both at fp32's."""
    results = {name: {} for name in sessions}
    for split, path in lists.items():
        if path is None:
            continue
        dataset = eval_dataset(path, crop_root, split, image_size, map_size)
        for name, session in sessions.items():
            results[name][split] = evaluate(OnnxNet(session), dataset, torch.device("cpu"), frame_batch,
                                            workers=0, desc=f"{name} {split}")
    out: dict = {"lists": {k: str(v) for k, v in lists.items() if v is not None}}
    for name, res in results.items():
        test_rows = res["test"].rows if "test" in res else res["dev"].rows
        m = score_metrics(res["dev"].rows, test_rows)
        c = m["cdcn_compatible"]["returned"]
        out[name] = {"threshold": c["val_threshold"], "dev_ACER": c["val_ACER"],
                     "test_ACER": c["test_ACER"] if "test" in res else None,
                     "test_ACER_iso": m["rows"]["iso_30107_3"]["ACER"] if "test" in res else None}
    t_ref, t_q = out["fp32"]["threshold"], out["int8"]["threshold"]
    for split in results["fp32"]:
        ref, got = results["fp32"][split].frames, results["int8"][split].frames
        if [f[:2] for f in ref] != [f[:2] for f in got]:
            raise RuntimeError(f"{split}: the two models scored different frames")  # same data, same code
        s_ref, s_q = np.array([f[2] for f in ref]), np.array([f[2] for f in got])
        own = _frame_decisions(ref, t_ref) == _frame_decisions(got, t_q)
        same = _frame_decisions(ref, t_ref) == _frame_decisions(got, t_ref)
        out[f"{split}_frames"] = {
            "frames": len(ref), "agreement": float(own.mean()) if len(own) else float("nan"),
            "agreement_at_fp32_threshold": float(same.mean()) if len(same) else float("nan"),
            "score_correlation": float(np.corrcoef(s_ref, s_q)[0, 1]) if len(ref) > 1 else float("nan"),
            "max_abs_score_diff": float(np.abs(s_ref - s_q).max()) if len(ref) else float("nan"),
            # how close the scores sit to the threshold: only frames this near can change side
            "frames_within_max_diff_of_threshold": int((np.abs(s_ref - t_ref) <= np.abs(s_ref - s_q).max()).sum())
            if len(ref) else 0,
            "score_std": float(s_ref.std()) if len(ref) else float("nan")}
    for key in ("dev_ACER", "test_ACER", "test_ACER_iso"):
        if out["fp32"][key] is not None:
            out[f"{key}_change_points"] = 100.0 * (out["int8"][key] - out["fp32"][key])
    return out


def format_comparison(cmp: dict) -> list[str]:
    lines = []
    for split in ("dev", "test"):
        f = cmp.get(f"{split}_frames")
        if f:
            lines.append(f"int8 vs fp32 on {f['frames']} {split} frames: decisions agree on {100 * f['agreement']:.2f} % "
                         f"(each at its own dev threshold; {100 * f['agreement_at_fp32_threshold']:.2f} % both at "
                         f"fp32's), score correlation {f['score_correlation']:.5f}, max |score diff| "
                         f"{f['max_abs_score_diff']:.3g} (score spread {f['score_std']:.3g}; "
                         f"{f['frames_within_max_diff_of_threshold']} frames that close to the threshold)")
    for key, what in (("dev_ACER", "dev ACER"), ("test_ACER", "test ACER (CDCN row)"),
                      ("test_ACER_iso", "test ACER (ISO/IEC 30107-3 row)")):
        if f"{key}_change_points" in cmp:
            lines.append(f"{what}: fp32 {100 * cmp['fp32'][key]:.2f} %, int8 {100 * cmp['int8'][key]:.2f} % "
                         f"(change {cmp[f'{key}_change_points']:+.2f} points)")
    return lines


__all__ = ["FLOAT_LAYER_CHOICES", "OnnxNet", "calibration_batches", "compare", "eval_dataset", "float_node_names",
           "format_comparison", "name_nodes", "quantize_int8"]
