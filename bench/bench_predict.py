"""Prediction speed, images/s, with PyTorch and with ONNX Runtime on a few CPU threads (default 2).

Model: the published CDCN+DUM (256 px, width 1.0; random weights unless ``--checkpoint``; another
network of networks/registry.py with ``--model``), in PyTorch (Conv2d_cd layers run folded, one
convolution each) and as exported by export_onnx.py.
Two measurements for each backend:

* ``forward``: the network alone on batches of ``--batch-sizes`` normalised crops;
* ``end to end``: what predict.py does per photo (DUM/inference.py): MTCNN box, 1.3x crop, MediaPipe
  depth map and its crop (with the JPEG round trips of the data stages), network, score; on the
  sample photos (640x480), all photos in one batch. The detector and mesh timings are reported too.

    python bench/bench_predict.py [--threads 2] [--repeats 5] [--checkpoint best.pt] [--out bench_predict.json]

Medians of ``--repeats`` timed runs after one warm-up; wall time (other jobs on the machine slow it:
the load average is logged).
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

from DUM.inference import (FaceCropper, TorchDepthModel, load_onnx_model, load_torch_model, score_crops,
                           torch_threads)
from networks.registry import DEPTH_NETS, build_model
from utils.io import atomic_write_bytes, atomic_write_json, read_image
from utils.run import setup_logging

log = logging.getLogger("bench_predict")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="our checkpoint (default: --model at its published settings, random weights)")
    p.add_argument("--model", default="cdcn_u", choices=DEPTH_NETS, help="network timed when no --checkpoint is given")
    p.add_argument("--samples-dir", type=Path, default=SHARED / "samples", help="photos for the end-to-end timing")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="forward-only batch sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    return p


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def make_models(args, tmp: Path) -> dict:
    import export_onnx

    if args.checkpoint:
        torch_model = load_torch_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        net = build_model(args.model)
        torch_model = TorchDepthModel(net, torch.device("cpu"), source="random weights", image_size=net.image_size,
                                      map_size=net.map_size, arch=net.arch)
    plain = export_onnx.fold_to_plain_convs(torch_model.net.eval()).eval()
    proto, kind, _ = export_onnx.export_graph(plain, torch_model.image_size, 18, "auto")
    atomic_write_bytes(tmp / "model.onnx", proto.SerializeToString())
    log.info("exported with the %s exporter", kind)
    return {"pytorch": torch_model, "onnxruntime": load_onnx_model(tmp / "model.onnx", threads=args.threads)}


def bench_forward(models: dict, args) -> dict:
    res = {}
    for name, model in models.items():
        for b in args.batch_sizes:
            x = torch.rand(b, 3, model.image_size, model.image_size) * 2 - 1
            sec = timed(lambda: model.forward(x), args.repeats)
            res[f"{name} b{b}"] = round(b / sec, 2)
            log.info("forward  %-12s batch %3d: %8.2f images/s (%.1f ms per batch)", name, b, b / sec, 1000 * sec)
    return res


def bench_end_to_end(models: dict, args) -> dict:
    photos = [read_image(p) for p in sorted(Path(args.samples_dir).glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no .jpg photos in {args.samples_dir}")
    model0 = next(iter(models.values()))
    cropper = FaceCropper(model0.image_size, model0.map_size)
    boxes = cropper.boxes(photos)
    res = {"photos": len(photos), "sizes": sorted({f"{p.shape[1]}x{p.shape[0]}" for p in photos})}
    res["detect ms/photo"] = round(1000 * timed(lambda: cropper.boxes(photos), args.repeats) / len(photos), 1)
    pairs = [(p, b) for p, bs in zip(photos, boxes) for b in bs]
    res["crop+depth ms/face"] = round(1000 * timed(lambda: [cropper.crop(p, b) for p, b in pairs], args.repeats)
                                      / max(1, len(pairs)), 1)
    for name, model in models.items():
        def once():
            crops = [c for faces in cropper(photos) for c in faces]
            scores = score_crops(model, crops)
            assert all(s.score is not None for s in scores), [s.crop.problem for s in scores]
        sec = timed(once, args.repeats)
        res[f"{name} images/s"] = round(len(photos) / sec, 2)
        log.info("end to end %-12s: %6.2f images/s (%.0f ms per photo: detection %.0f, crop+depth %.0f, rest network)",
                 name, len(photos) / sec, 1000 * sec / len(photos), res["detect ms/photo"], res["crop+depth ms/face"])
    return res


def run(args) -> dict:
    cv2.setNumThreads(args.threads)
    with torch_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        models = make_models(args, Path(tmp))
        log.info("threads %d (torch %d), cpu_count %s, model %s %s", args.threads, torch.get_num_threads(),
                 os.cpu_count(), models["pytorch"].source, models["pytorch"].arch)
        result = {"threads": args.threads, "arch": models["pytorch"].arch,
                  "forward images/s": bench_forward(models, args), "end_to_end": bench_end_to_end(models, args)}
    result["load_average"] = os.getloadavg()
    log.info("load average during the run: %.1f %.1f %.1f", *result["load_average"])
    if args.out is not None:
        atomic_write_json(args.out, result)
    e2e = result["end_to_end"]
    print(f"images/s on {args.threads} CPU threads, {result['arch']}:")
    for name in ("pytorch", "onnxruntime"):
        fwd = ", ".join(f"batch {b}: {result['forward images/s'][f'{name} b{b}']}" for b in args.batch_sizes)
        print(f"  {name:12s} forward only {fwd}; end to end (detection + depth + network): {e2e[f'{name} images/s']}")
    return result


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run(args)


if __name__ == "__main__":
    main()
