"""Prediction speed on a few CPU threads (default 2): PyTorch fp32, BN-folded, ONNX Runtime fp32 and int8.

Model: the published CDCN+DUM (256 px, width 1.0; random weights unless ``--checkpoint``; another
network of networks/registry.py with ``--model``) run four ways:

* ``pytorch fp32``: what predict.py ran before BatchNorm folding (Conv2d_cd computed as one convolution,
  BatchNorm separate);
* ``pytorch BN-folded``: networks/fold.py, what predict.py runs now;
* ``onnx fp32``: the graph export_onnx.py writes, in ONNX Runtime;
* ``onnx int8``: that graph quantized by DUM/quantize.py (QDQ, per-channel int8 weights, heads in
  float), calibrated on dev crops (``--calibration-list``/``--crop-root``) or, without them, on the
  sample photos' face crops.

Rows: ``forward`` (the network alone on batches of ``--batch-sizes`` crops, ratio to pytorch fp32 at
the same batch) and ``end to end`` (what predict.py does per photo on the sample photos: MTCNN box,
1.3x crop, MediaPipe depth map and its crop with the data stages' JPEG round trips, network, score;
ratio to today's ONNX path) with a profile of where the time goes. With ``--eval-checkpoint`` (a
trained model) and ``--calibration-list``/``--test-list``, export_onnx.py --int8 runs on it and its
decision agreement and ACER change are printed too. The CPU features of the machine (AVX2, AVX-512,
VNNI, bf16, from /proc/cpuinfo) are printed: int8 speed depends on VNNI.

    python bench/bench_predict.py [--threads 2] [--repeats 5] [--checkpoint best.pt] [--out bench_predict.json]
    python bench/bench_predict.py --eval-checkpoint CDCN_U_P1/best.pt --crop-root oulu_images_crop \\
        --calibration-list oulu_images_crop/protocols/Protocol_1/Dev.txt --test-list .../Test.txt

Medians of ``--repeats`` timed runs after one warm-up; wall time (other jobs on the machine slow it:
the load average before and after is printed).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import os
import tempfile
import time

import cv2
import numpy as np
import torch

import export_onnx
from DUM.inference import (FaceCropper, TorchDepthModel, load_onnx_model, load_torch_model, normalize, score_crops,
                           torch_threads)
from DUM.quantize import (FLOAT_LAYER_CHOICES, calibration_batches, eval_dataset, float_node_names, format_comparison,
                          name_nodes, quantize_int8)
from networks.fold import fold_for_inference
from networks.registry import DEPTH_NETS, build_model
from utils.io import atomic_write_bytes, atomic_write_json, read_image
from utils.run import setup_logging

log = logging.getLogger("bench_predict")
SHARED = Path(__file__).resolve().parents[2] / "shared"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
BACKENDS = ("pytorch fp32", "pytorch BN-folded", "onnx fp32", "onnx int8")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="model to time (default: --model at its published settings, random weights)")
    p.add_argument("--model", default="cdcn_u", choices=DEPTH_NETS, help="network timed when no --checkpoint is given")
    p.add_argument("--samples-dir", type=Path, default=SHARED / "samples", help="photos for the end-to-end timing")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="forward-only batch sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    p.add_argument("--crop-root", default=None, help="crop tree of --calibration-list/--test-list")
    p.add_argument("--calibration-list", default=None, help="dev protocol list: int8 calibration (and agreement) crops")
    p.add_argument("--test-list", default=None, help="test protocol list for the agreement figures")
    p.add_argument("--eval-checkpoint", default=None,
                   help="trained model for the agreement figures (export_onnx.py --int8 on it; default --checkpoint)")
    p.add_argument("--float-layers", nargs="*", default=["heads"], choices=FLOAT_LAYER_CHOICES,
                   help="layers the int8 model keeps in float (as export_onnx.py --float-layers)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    return p


def cpu_features() -> dict:
    """Model name and the SIMD flags that matter for int8/bf16 inference, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown (no /proc/cpuinfo)", "flags": []}
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags],
            "vnni": bool(flags & {"avx512_vnni", "avx_vnni"})}


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed_model(args) -> TorchDepthModel:
    if args.checkpoint:
        return load_torch_model(args.checkpoint)
    torch.manual_seed(0)
    net = build_model(args.model)
    return TorchDepthModel(net, torch.device("cpu"), source="random weights", image_size=net.image_size,
                           map_size=net.map_size, arch=net.arch)


def calibration_data(args, torch_model, sample_crops) -> tuple[list[np.ndarray], str]:
    if args.calibration_list and args.crop_root:
        dataset = eval_dataset(args.calibration_list, args.crop_root, "dev", torch_model.image_size, torch_model.map_size)
        batches = calibration_batches(dataset, 64, 8)
        return batches, f"{sum(map(len, batches))} dev frames of {args.calibration_list}"
    images = [c.image for c in sample_crops] + [np.ascontiguousarray(c.image[:, ::-1]) for c in sample_crops]
    return [normalize(images).numpy()], f"{len(images)} sample face crops (and mirror images)"


def make_models(args, torch_model: TorchDepthModel, tmp: Path, sample_crops) -> tuple[dict, str]:
    folded = TorchDepthModel(fold_for_inference(torch_model.net), torch.device("cpu"), source=torch_model.source,
                             image_size=torch_model.image_size, map_size=torch_model.map_size, arch=torch_model.arch)
    proto, kind, _ = export_onnx.export_graph(folded.net, torch_model.image_size, 18, "auto")
    atomic_write_bytes(tmp / "model.onnx", proto.SerializeToString())
    name_nodes(proto)
    batches, calibration = calibration_data(args, torch_model, sample_crops)
    keep = [name for names in float_node_names(proto, args.float_layers).values() for name in names]
    quant = quantize_int8(proto, batches, keep, tmp_dir=tmp)
    atomic_write_bytes(tmp / "model.int8.onnx", quant.SerializeToString())
    log.info("exported with the %s exporter; int8 calibrated on %s, kept in float: %s", kind, calibration, keep)
    models = {"pytorch fp32": torch_model, "pytorch BN-folded": folded,
              "onnx fp32": load_onnx_model(tmp / "model.onnx", threads=args.threads),
              "onnx int8": load_onnx_model(tmp / "model.int8.onnx", threads=args.threads)}
    return models, calibration


def bench_forward(models: dict, args) -> dict:
    res = {}
    for b in args.batch_sizes:
        x = torch.rand(b, 3, models["pytorch fp32"].image_size, models["pytorch fp32"].image_size,
                       generator=torch.Generator().manual_seed(b)) * 2 - 1
        for name, model in models.items():
            sec = timed(lambda: model.forward(x), args.repeats)
            res[f"{name} b{b}"] = b / sec
            log.info("forward  %-18s batch %3d: %8.2f images/s (%.1f ms per batch)", name, b, b / sec, 1000 * sec)
    return res


def profile_pipeline(cropper: FaceCropper, model, photos, repeats: int) -> dict:
    """Median ms per photo of each step predict.py takes, run step by step on the same photos."""
    boxes = cropper.boxes(photos)
    pairs = [(p, b) for p, bs in zip(photos, boxes) for b in bs]
    crops = [cropper.crop(p, b) for p, b in pairs]
    x = normalize([c.image for c in crops])
    n = len(photos)
    computed = _Precomputed(model, x)
    steps = {
        "detection (MTCNN, once per photo)": lambda: cropper.boxes(photos),
        "face crop + JPEG round trip": lambda: [cropper.face_image(p, b) for p, b in pairs],
        "face mesh + depth render": lambda: [cropper.depth_estimator.estimate(p, b) for p, b in pairs],
        "network (one batch over all faces)": lambda: model.forward(x),
        "score (sum mu / sum depth)": lambda: score_crops(computed, crops),
    }
    return {name: 1000 * timed(fn, repeats) / n for name, fn in steps.items()}


class _Precomputed:
    """A model whose forward returns the outputs computed once: times the scoring arithmetic alone."""

    def __init__(self, model, x):
        self.out = model.forward(x)

    def forward(self, x):
        return self.out


def bench_end_to_end(models: dict, args, photos, cropper) -> dict:
    res = {"photos": len(photos), "sizes": sorted({f"{p.shape[1]}x{p.shape[0]}" for p in photos})}
    for name, model in models.items():
        if name == "pytorch BN-folded":
            continue

        def once():
            crops = [c for faces in cropper(photos) for c in faces]
            scores = score_crops(model, crops)
            assert all(s.score is not None for s in scores), [s.crop.problem for s in scores]
        res[name] = len(photos) / timed(once, args.repeats)
        log.info("end to end %-12s: %6.2f images/s", name, res[name])
    res["profile ms/photo (onnx int8)"] = profile_pipeline(cropper, models["onnx int8"], photos, args.repeats)
    return res


def agreement(args, tmp: Path) -> dict | None:
    """export_onnx.py --int8 on the trained model: decision agreement and ACER change (DUM/quantize.py)."""
    checkpoint = args.eval_checkpoint or args.checkpoint
    if not (checkpoint and args.calibration_list and args.crop_root):
        return None
    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp / "eval.onnx"), "--int8", "--crop-root", args.crop_root,
            "--calibration-list", args.calibration_list, "--min-agreement", "0", "--max-acer-change", "100",
            "--float-layers", *args.float_layers]
    summary = export_onnx.run(export_onnx.build_parser().parse_args(argv + (["--test-list", args.test_list]
                                                                            if args.test_list else [])))
    return summary.get("int8")


def report(result: dict, args) -> None:
    cpu = result["cpu"]
    print(f"\nCPU: {cpu['model']}, {os.cpu_count()} cores, features {' '.join(cpu['flags']) or 'none of'} "
          f"{'(VNNI: int8 goal 6x)' if cpu['vnni'] else '(no VNNI: int8 goal 2.5x)'}; {args.threads} threads; "
          f"load average before/after {result['load_before'][0]:.1f}/{result['load_after'][0]:.1f} "
          f"(a shared machine: treat as +-40 %)")
    print(f"model {result['arch']} ({result['source']}); int8 calibrated on {result['calibration']}")
    fwd = result["forward images/s"]
    print(f"{'images/s':22s}" + "".join(f"{'batch ' + str(b):>18s}" for b in args.batch_sizes))
    for name in BACKENDS:
        cells = [f"{fwd[f'{name} b{b}']:8.2f} ({fwd[f'{name} b{b}'] / fwd[f'pytorch fp32 b{b}']:4.1f}x)"
                 for b in args.batch_sizes]
        print(f"{'forward ' + name:22s}" + "".join(f"{c:>18s}" for c in cells))
    e2e = result["end_to_end"]
    for name in ("pytorch fp32", "onnx fp32", "onnx int8"):
        print(f"{'end to end ' + name:22s}{e2e[name]:8.2f} images/s ({e2e[name] / e2e['onnx fp32']:.1f}x today's "
              f"ONNX path, {e2e[name] / e2e['pytorch fp32']:.1f}x PyTorch)")
    prof = e2e["profile ms/photo (onnx int8)"]
    total = sum(prof.values())
    print(f"end to end with int8, ms per photo ({total:.0f} in all, {e2e['photos']} photos "
          f"{' '.join(e2e['sizes'])}): " + "; ".join(f"{k} {v:.1f} ({100 * v / total:.0f} %)" for k, v in prof.items()))
    cmp = result.get("agreement")
    if cmp is None:
        print("agreement: not measured (give a trained --eval-checkpoint with --crop-root, --calibration-list, --test-list)")
        return
    for line in format_comparison(cmp):
        print("agreement: " + line)


def run(args) -> dict:
    cv2.setNumThreads(args.threads)
    photos = [read_image(p) for p in sorted(Path(args.samples_dir).glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no .jpg photos in {args.samples_dir}")
    result = {"threads": args.threads, "cpu": cpu_features(), "load_before": os.getloadavg()}
    with torch_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        model0 = speed_model(args)
        cropper = FaceCropper(model0.image_size, model0.map_size)
        sample_crops = [c for faces in cropper(photos) for c in faces]
        models, result["calibration"] = make_models(args, model0, Path(tmp), sample_crops)
        result.update(arch=models["pytorch fp32"].arch, source=models["pytorch fp32"].source)
        result["forward images/s"] = bench_forward(models, args)
        result["end_to_end"] = bench_end_to_end(models, args, photos, cropper)
        result["agreement"] = agreement(args, Path(tmp))
    result["load_after"] = os.getloadavg()
    if args.out is not None:
        atomic_write_json(args.out, result)
    report(result, args)
    return result


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run(args)


if __name__ == "__main__":
    main()
