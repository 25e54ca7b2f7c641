"""Export a trained depth network (CDCN+DUM or any of networks/registry.py) to ONNX, central-difference terms folded.

Every ``Conv2d_cd`` becomes an ``nn.Conv2d`` holding its folded kernel (centre tap W_c - theta * sum W,
exact for the 3x3/padding-1 layers of these networks, docs/ORIGINAL.md 3.1) and every BatchNorm that
follows a convolution is folded into it (networks/fold.py), so the graph holds only ordinary
convolutions that any runtime accelerates. Outputs are ``mu`` and ``logvar`` ``[B,M,M]``
(the random DUM sample is left out: scores use mu only; a network without DUM gives its map as
``mu``), input ``x`` ``[B,3,S,S]`` with a dynamic batch axis. ``image_size``, ``map_size``, ``threshold``, ``threshold_source`` (and the architecture)
go into the model's metadata_props, which ``predict.py`` reads when given the ``.onnx`` file.

Checks before the file is written: the graph's operators are the expected ones and it holds exactly
one Conv per convolution of the model (a CDC left unfolded would add a second); then ONNX Runtime is
compared with the PyTorch model in its original two-convolution form on real face crops (faces that
MTCNN finds in ``--check-images``, cropped as predict.py crops them; images without a face are used
whole, resized). The max abs difference of mu and logvar is printed; the export fails (exit 1, no
file written) when it exceeds ``--tolerance`` times the largest |value| of that output in PyTorch
(default 1e-4, i.e. 0.01 % of the output's range; float32 reordering gives ~1e-6).

With ``--int8`` a static int8 copy is written too (``<out>.int8.onnx``; DUM/quantize.py: QDQ,
per-channel int8 weights, uint8 activations, MinMax calibration on frames of ``--calibration-list``,
the mu/logvar heads kept in float). Its check is about decisions, not a max difference: both graphs
score the dev list (and ``--test-list``) as DUM/test.py does; the frame decisions that agree (each
model at its own dev threshold) and the change of the dev and test ACER are printed, and the int8
file is written only when agreement >= ``--min-agreement`` (0.99) and no ACER moves by more than
``--max-acer-change`` (0.5) points. It stores its own dev threshold (int8 scores shift slightly).

    python export_onnx.py --checkpoint runs/CDCN_U_P1/best.pt --out cdcn_u.onnx --check-images samples/
    python export_onnx.py --checkpoint runs/CDCN_U_P1/best.pt --out cdcn_u.onnx --int8 --crop-root oulu_images_crop \
        --calibration-list oulu_images_crop/protocols/Protocol_1/Dev.txt --test-list .../Test.txt
"""
from __future__ import annotations

import argparse
import io
import logging
import math
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn

from data.media import collect_inputs
from DUM.engine import depth_outputs
from DUM.inference import FaceCropper, load_torch_model, normalize
from DUM.quantize import (FLOAT_LAYER_CHOICES, calibration_batches, compare, eval_dataset, float_node_names,
                          format_comparison, name_nodes, quantize_int8)
from networks.cdc import set_cdc_fold
from networks.fold import count_batchnorm, fold_for_inference, fold_to_plain_convs  # noqa: F401 (fold_to_plain_convs: part of this module's API)
from networks.registry import DEPTH_NETS
from utils.checkpoint import CheckpointError
from utils.io import InputError, atomic_write_bytes, read_image
from utils.run import run_stage, save_config, setup_logging

log = logging.getLogger("export_onnx")

# Operators a CDCN(+DUM) graph may hold after export (shape plumbing of Resize and Squeeze included);
# CDCN++'s spatial attention adds the reductions, sigmoid and product, ResNet-18's residual sums an
# Add. Anything else (ReduceSum/Sub of an unfolded CDC, RandomNormal of the DUM sample) fails the export.
EXPECTED_OPS = {"Conv", "BatchNormalization", "Relu", "MaxPool", "Resize", "Concat", "Squeeze", "Unsqueeze",
                "Shape", "Slice", "Gather", "Cast", "Constant", "Identity", "Reshape"}
ATTENTION_OPS = {"ReduceMean", "ReduceMax", "Sigmoid", "Mul"}
MODEL_OPS = {"cdcnpp": ATTENTION_OPS, "resnet18_u": {"Add"}, "resnet18": {"Add"}}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="best.pt/last.pt of DUM/train.py or the released CDCN_U_P1.pkl")
    p.add_argument("--out", default="cdcn_u.onnx", help="ONNX file to write")
    p.add_argument("--check-images", nargs="*", default=[],
                   help="images or folders for the ONNX Runtime vs PyTorch check (none: seeded random inputs)")
    p.add_argument("--max-check", type=int, default=32, help="at most this many faces in the check")
    p.add_argument("--opset", type=int, default=18,
                   help="ONNX opset (the dynamo exporter of torch 2.14 implements 18 and up)")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "torchscript"),
                   help="torch.onnx.export path: dynamo (torch.export), torchscript (legacy tracer), "
                        "auto = dynamo, falling back to torchscript if it fails")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max |onnx - torch| allowed, relative to the largest |value| of each output")
    p.add_argument("--threshold", type=float, default=None,
                   help="threshold to store (default: the checkpoint's dev threshold, if any)")
    p.add_argument("--threshold-source", default=None, help="where --threshold came from (stored with it)")
    a = p.add_argument_group("network of a plain state_dict saved at other settings (default: what the checkpoint "
                             "records, else recognised from its keys, at the published settings)")
    a.add_argument("--model", default=None, choices=DEPTH_NETS, help="network (networks/registry.py)")
    a.add_argument("--theta", type=float, default=None, help="Conv2d_cd theta (CDCN family)")
    a.add_argument("--width", type=float, default=None, help="channel width multiplier")
    a.add_argument("--image-size", type=int, default=None, help="input side")
    q = p.add_argument_group("int8 (static quantization with ONNX Runtime, DUM/quantize.py)")
    q.add_argument("--int8", action="store_true", help="also write a static int8 model, calibrated on dev crops")
    q.add_argument("--int8-out", default=None, help="int8 file (default <out>.int8.onnx)")
    q.add_argument("--calibration-list", default=None, help="dev protocol list whose crops calibrate the int8 model")
    q.add_argument("--test-list", default=None, help="test protocol list for the ACER change (optional)")
    q.add_argument("--crop-root", default="oulu_images_crop", help="crop tree of the lists (dev_*_flod, test_*_flod)")
    q.add_argument("--calibration-frames", type=int, default=256, help="dev frames the calibration sees")
    q.add_argument("--calibration-batch", type=int, default=8, help="frames per calibration batch")
    q.add_argument("--float-layers", nargs="*", default=["heads"], choices=FLOAT_LAYER_CHOICES,
                   help="layers kept in float32: heads (the mu/logvar convolutions), first (the first convolution)")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    q.add_argument("--reduce-range", action="store_true",
                   help="7-bit weights: for x86 CPUs without VNNI, where uint8 x int8 products can saturate")
    q.add_argument("--min-agreement", type=float, default=0.99,
                   help="int8 frame decisions that must agree with the float model's (else the int8 file is not written)")
    q.add_argument("--max-acer-change", type=float, default=0.5, help="largest allowed dev/test ACER change, in points")
    p.add_argument("--out-dir", default=None,
                   help="folder for <name>.export.json (config) and <name>.export.log (default: the folder of --out)")
    return p


def convs_used(net: nn.Module, image_size: int) -> int:
    """Convolutions a forward pass calls (ResNet18_u's ``lastconv3`` exists in the original but is never called)."""
    used = set()
    hooks = [m.register_forward_hook(lambda mod, inp, out: used.add(id(mod)))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            MeanLogvar(net).eval()(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    return len(used)


class MeanLogvar(nn.Module):
    """The export graph: the network's mu (and logvar for CDCN_u; baselines give their map as mu)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        _, mu, logvar = depth_outputs(self.net(x))
        return (mu,) if logvar is None else (mu, logvar)


def export_graph(net: nn.Module, image_size: int, opset: int, exporter: str = "auto"):
    """(onnx.ModelProto, exporter used, output names) of ``net`` (already folded, eval mode)."""
    import onnx

    head = MeanLogvar(net).eval()
    x = torch.zeros(2, 3, image_size, image_size)  # batch 2: torch.export would specialise a batch of 1
    outputs = ["mu", "logvar"][:len(head(x))]
    tries = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    for name in ("onnx_ir", "onnxscript"):  # their INFO lines report every optimisation pass
        logging.getLogger(name).setLevel(logging.WARNING)
    for kind in tries:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer/deprecation chatter; the checks below are what count
                if kind == "dynamo":
                    program = torch.onnx.export(head, (x,), None, input_names=["x"], output_names=outputs,
                                                opset_version=opset, dynamo=True, external_data=False,
                                                dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
                    proto = program.model_proto
                else:
                    buf = io.BytesIO()
                    torch.onnx.export(head, (x,), buf, input_names=["x"], output_names=outputs, opset_version=opset,
                                      dynamo=False, dynamic_axes={n: {0: "batch"} for n in ["x"] + outputs})
                    proto = onnx.load_from_string(buf.getvalue())
            return proto, kind, outputs
        except Exception as exc:  # exporter failures come in many types; the fallback handles them
            if kind == tries[-1]:
                raise
            log.warning("the %s exporter failed (%s: %s); trying %s", kind, type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "", tries[-1])
    raise AssertionError("unreachable")


def check_ops(proto, model_name: str, expected_convs: int) -> Counter:
    """Operator counts of the graph; ValueError when an unexpected op appears or convs are missing/extra."""
    ops = Counter(n.op_type for n in proto.graph.node)
    allowed = EXPECTED_OPS | MODEL_OPS.get(model_name, set())
    extra = sorted(set(ops) - allowed)
    if extra:
        raise ValueError(f"exported graph holds unexpected operators {extra} (all: {dict(ops)})")
    if ops["Conv"] != expected_convs:
        raise ValueError(f"exported graph holds {ops['Conv']} Conv nodes, the model has {expected_convs} convolutions "
                         f"(an unfolded central-difference conv shows up as extra ones)")
    return ops


def check_inputs(paths, cropper_args: dict, image_size: int, max_faces: int) -> tuple[torch.Tensor, str]:
    """Normalised ``[N,3,S,S]`` batch of face crops from ``paths`` (whole images when no face is found)."""
    if not paths:
        gen = torch.Generator().manual_seed(0)
        return torch.rand(4, 3, image_size, image_size, generator=gen) * 2 - 1, "4 seeded random inputs"
    files = collect_inputs(paths)
    cropper = FaceCropper(image_size, **cropper_args)
    crops, whole = [], 0
    for path in files:
        try:
            image = read_image(path)
        except InputError as exc:
            log.warning("check image skipped: %s", exc)
            continue
        boxes = cropper.boxes([image])[0]
        if boxes:
            crops += [cropper.face_image(image, b) for b in boxes]
        else:
            crops.append(cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1])
            whole += 1
        if len(crops) >= max_faces:
            break
    if not crops:
        raise InputError(f"--check-images {' '.join(map(str, paths))}: no readable image")
    crops = crops[:max_faces]
    return normalize(crops), f"{len(crops) - whole} face crops and {whole} whole images from {len(files)} files"


def parity(reference: dict, onnx_out: dict, tolerance: float) -> dict:
    """Per output: max abs difference, the reference's max |value| and their ratio; ``ok`` overall."""
    res = {}
    for name, ref in reference.items():
        ref, got = np.asarray(ref, np.float64), np.asarray(onnx_out[name], np.float64)
        if ref.shape != got.shape:
            raise ValueError(f"{name}: ONNX shape {got.shape} != PyTorch shape {ref.shape}")
        diff = float(np.abs(ref - got).max()) if ref.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        rel = diff / max(scale, 1e-12)
        res[name] = {"max_abs_diff": diff, "max_abs_value": scale, "relative": rel,
                     "ok": bool(math.isfinite(diff) and rel <= tolerance)}
    res["ok"] = all(v["ok"] for v in res.values())
    return res


def metadata(model, threshold, threshold_source, exporter: str, outputs) -> dict:
    meta = {"image_size": model.image_size, "map_size": model.map_size, "model": model.arch["model"],
            "theta": model.arch.get("theta", ""), "width": model.arch["width"], "source_checkpoint": model.source,
            "threshold": "" if threshold is None else repr(float(threshold)),
            "threshold_source": threshold_source or "", "decision_rule": "live iff score > threshold",
            "score": "sum(mu) / sum(depth crop, raw 0-255) per frame; video = mean of frames",
            "input": "x [B,3,S,S] RGB face crop (box x1.3), (pixel - 127.5) / 128",
            "outputs": ",".join(outputs), "exporter": exporter, "torch_version": torch.__version__}
    return {k: str(v) for k, v in meta.items()}


def run(args) -> dict:
    import onnx
    import onnxruntime as ort

    model = load_torch_model(args.checkpoint, device="cpu", model=args.model, theta=args.theta, width=args.width,
                             image_size=args.image_size)
    threshold = args.threshold if args.threshold is not None else model.threshold
    source = (args.threshold_source or "--threshold of export_onnx.py") if args.threshold is not None \
        else model.threshold_source
    if threshold is None:
        log.warning("%s holds no threshold: the ONNX file gets none (predict.py will need --threshold)", model.source)
    reference = model.net.eval()
    plain = fold_for_inference(reference)  # central differences and BatchNorm folded into plain convs
    log.info("folded %d BatchNorm layers into the convolutions before them",
             count_batchnorm(reference) - count_batchnorm(plain))
    n_convs = convs_used(plain, model.image_size)
    proto, kind, outputs = export_graph(plain, model.image_size, args.opset, args.exporter)
    ops = check_ops(proto, model.arch["model"], n_convs)
    del proto.metadata_props[:]
    for key, value in metadata(model, threshold, source, kind, outputs).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    print(f"exported with the {kind} exporter, opset {max(o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx'))}: "
          f"{n_convs} Conv nodes = {n_convs} convolutions of the model; ops {dict(sorted(ops.items()))}", flush=True)

    x, what = check_inputs(args.check_images, {"map_size": model.map_size}, model.image_size, args.max_check)
    set_cdc_fold(reference, False)  # compare against the original two-convolution form of every CDC
    try:
        with torch.inference_mode():
            ref = MeanLogvar(reference)(x)
    finally:
        set_cdc_fold(reference, True)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(outputs, {"x": x.numpy()})
    check = parity({n: r.numpy() for n, r in zip(outputs, ref)}, dict(zip(outputs, got)), args.tolerance)
    for name in outputs:
        c = check[name]
        print(f"ONNX Runtime vs PyTorch on {what}: {name} max abs diff {c['max_abs_diff']:.3g} "
              f"(max |{name}| {c['max_abs_value']:.3g}, relative {c['relative']:.3g}, tolerance {args.tolerance:g})",
              flush=True)
    summary = {"out": str(args.out), "exporter": kind, "ops": dict(ops), "convs": n_convs, "check": check,
               "check_inputs": what, "threshold": threshold, "threshold_source": source}
    if not check["ok"]:
        log.error("ONNX Runtime disagrees with PyTorch beyond --tolerance %g: %s not written", args.tolerance, args.out)
        return summary
    atomic_write_bytes(args.out, data)
    log.info("wrote %s (%.1f MB)", args.out, len(data) / 2**20)
    if args.int8:
        summary["int8"] = export_int8(args, proto, model, threshold, source)
        summary["check"]["ok"] = summary["check"]["ok"] and summary["int8"]["ok"]
    return summary


def int8_path(args) -> Path:
    out = Path(args.out)
    return Path(args.int8_out) if args.int8_out else out.with_name(f"{out.stem}.int8{out.suffix or '.onnx'}")


def export_int8(args, proto, model, threshold, source) -> dict:
    """Quantize the float graph (DUM/quantize.py), compare its decisions with the float graph's on the dev
    (and test) lists, and write it when they agree well enough; returns the comparison."""
    import onnxruntime as ort

    if not args.calibration_list:
        raise InputError("--int8 needs --calibration-list (the dev protocol list whose crops calibrate it)")
    out = int8_path(args)
    name_nodes(proto)
    keep = float_node_names(proto, args.float_layers)
    dataset = eval_dataset(args.calibration_list, args.crop_root, "dev", model.image_size, model.map_size)
    batches = calibration_batches(dataset, args.calibration_frames, args.calibration_batch)
    frames = sum(len(b) for b in batches)
    log.info("int8: calibrating on %d dev frames of %s; kept in float: %s", frames, args.calibration_list, keep or "none")
    quant = quantize_int8(proto, batches, [n for names in keep.values() for n in names],
                          per_channel=not args.per_tensor, reduce_range=args.reduce_range)
    sessions = {name: ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
                for name, p in (("fp32", proto), ("int8", quant))}
    cmp = compare(sessions, {"dev": Path(args.calibration_list), "test": args.test_list and Path(args.test_list)},
                  args.crop_root, model.image_size, model.map_size)
    for line in format_comparison(cmp):
        print(line, flush=True)
    changes = [abs(cmp[k]) for k in ("dev_ACER_change_points", "test_ACER_change_points") if k in cmp]
    agreement = min(cmp[f"{s}_frames"]["agreement"] for s in ("dev", "test") if f"{s}_frames" in cmp)
    cmp["ok"] = bool(agreement >= args.min_agreement and max(changes) <= args.max_acer_change)
    cmp.update(out=str(out), float_layers=keep, calibration_frames=frames)
    if not cmp["ok"]:
        log.error("int8 model: decision agreement %.2f %% (need %.2f %%) or ACER change %.2f points (allowed %.2f): "
                  "%s not written", 100 * agreement, 100 * args.min_agreement, max(changes), args.max_acer_change, out)
        return cmp
    meta = {p.key: p.value for p in proto.metadata_props}
    if args.threshold is None:  # int8 scores shift a little: its own dev threshold, chosen as DUM/test.py does
        meta.update(threshold=repr(float(cmp["int8"]["threshold"])),
                    threshold_source=f"{args.calibration_list} (dev threshold of the int8 model's scores)")
    meta["quantization"] = (f"static int8 QDQ (uint8 activations, int8 weights {'per tensor' if args.per_tensor else 'per channel'}"
                            f"{', reduced range' if args.reduce_range else ''}), MinMax calibration on {frames} frames "
                            f"of {args.calibration_list}; float32 layers: {', '.join(args.float_layers) or 'none'}")
    del quant.metadata_props[:]
    for key, value in meta.items():
        quant.metadata_props.add(key=key, value=value)
    data = quant.SerializeToString()
    atomic_write_bytes(out, data)
    log.info("wrote %s (%.1f MB)", out, len(data) / 2**20)
    return cmp


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.out).resolve().parent
    setup_logging(out_dir, filename=f"{Path(args.out).name}.export.log")
    save_config(args, out_dir, filename=f"{Path(args.out).name}.export.json")
    summary = run_stage(run, args, errors=(CheckpointError, ValueError,))
    if not summary["check"]["ok"]:
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()
