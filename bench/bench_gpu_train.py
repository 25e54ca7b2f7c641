"""GPU training throughput: CDCN+DUM step variants with TFLOP/s and fraction of peak, the loader alone,
the generator's pairs/s, and the fused central-difference gradient check. One script, one run.

    python bench/bench_gpu_train.py --out bench/results/gpu_train.json          # one GPU, a few minutes
    python bench/bench_gpu_train.py --device cpu --image-size 32 --width 0.25 --batch-size 2 \\
        --iters 1 --warmup 0 --variants fp32 bf16-cl --loader-workers 0 --gen-size 64 --gen-width 0.125 --gen-batch 2   # CPU smoke

Printed, one line each:

* ``step <variant>``: CDCN+DUM training step (forward, DUM losses, backward, Adam) at ``--image-size``
  and ``--batch-size`` (defaults 256 px, 64): images/s, achieved TFLOP/s (FLOPs of one step counted
  by torch.utils.flop_counter, forward + backward) and the fraction of the GPU's dense peak for that
  precision (``--peak-tflops`` or a table of known GPUs). Variants: ``fp32`` (TF32 off), ``tf32``
  (PyTorch's default for cuDNN convolutions), ``bf16`` (autocast), ``bf16-cl`` (+ channels-last),
  ``bf16-cl-compile`` (+ torch.compile of the model).
* ``loader N workers``: DUM/dataset.py's training dataset alone (JPEG decode + full augmentation) on
  a synthetic crop tree of 256 px JPEGs (or ``--crop-root``/``--train-list``), images/s.
* ``generator``: the dual VAE's training step (reconstruction + KL terms; the LightCNN identity
  loss is left out) at ``--gen-size``/``--gen-batch``, pairs/s, bf16 and fp32.
* ``fused CDC check``: relative L2 difference of all parameter gradients between the fused
  BatchNorm-ReLU-conv training node (networks/cdc.py, used on the CPU only) and plain autograd, on
  this device, with TF32 off/on and with cuDNN off (see docs/PERFORMANCE.md for what the numbers mean).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import json
import logging
import statistics
import tempfile
import time
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

import networks.cdcn as cdcn_module
from data.frames import depth_name, frame_name, split_dirs
from data.protocols import read_protocol
from DUM.dataset import AugmentConfig, DepthTrainDataset
from DUM.engine import depth_outputs
from DUM.losses import dum_loss
from generation.losses import kl_loss, reconstruction_loss
from networks import build_depth_net
from networks.vae import DualVAE
from utils.perf import maybe_compile, tf32, to_channels_last
from utils.run import resolve_device, setup_logging
from utils.training import autocast

log = logging.getLogger("bench.gpu_train")
VARIANTS = {  # name: (autocast dtype, TF32, channels-last, compile)
    "fp32": (None, False, False, False), "tf32": (None, True, False, False), "bf16": (torch.bfloat16, True, False, False),
    "bf16-cl": (torch.bfloat16, True, True, False), "bf16-cl-compile": (torch.bfloat16, True, True, True)}
# Dense peak TFLOP/s (vendor data sheets, SXM parts): bf16 tensor cores, TF32 tensor cores, plain fp32.
PEAKS = {"H200": (989.0, 494.0, 67.0), "H100": (989.0, 494.0, 67.0), "A100": (312.0, 156.0, 19.5),
         "L40S": (362.0, 183.0, 91.6)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:1, cpu (cpu: a smoke run of the script)")
    p.add_argument("--image-size", type=int, default=256, help="CDCN+DUM input side")
    p.add_argument("--width", type=float, default=1.0, help="CDCN+DUM width multiplier")
    p.add_argument("--batch-size", type=int, default=64, help="training batch")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="step variants")
    p.add_argument("--iters", type=int, default=10, help="timed steps per measurement (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile happens here)")
    p.add_argument("--peak-tflops", type=float, nargs=3, default=None, metavar=("BF16", "TF32", "FP32"),
                   help="dense peaks of this GPU (default: a table of known GPUs)")
    p.add_argument("--loader-workers", type=int, nargs="*", default=[2, 4, 8, 16], help="loader worker counts")
    p.add_argument("--loader-batches", type=int, default=20, help="batches per loader measurement")
    p.add_argument("--crop-root", default=None, help="real crop tree for the loader (default: a synthetic one)")
    p.add_argument("--train-list", default=None, help="protocol list of --crop-root")
    p.add_argument("--gen-size", type=int, default=256, help="generator resolution")
    p.add_argument("--gen-width", type=float, default=1.0, help="generator width multiplier")
    p.add_argument("--gen-batch", type=int, default=60, help="generator pairs per step (paper: 240 over 4 GPUs)")
    p.add_argument("--check-size", type=int, default=64, help="image side of the fused-CDC gradient check")
    p.add_argument("--check-batch", type=int, default=8, help="batch of the fused-CDC gradient check")
    p.add_argument("--out", default=None, help="also write every figure as JSON here")
    return p


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, iters)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peaks(args, device) -> tuple[float, float, float] | None:
    if args.peak_tflops:
        return tuple(args.peak_tflops)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def train_step(model, opt, x, target, generated, dtype):
    with autocast(x.device, dtype):
        pred, mu, logvar = depth_outputs(model(x))
    loss = dum_loss(pred.float(), mu.float(), logvar.float(), target, generated).total
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_flops(args, device) -> float:
    """FLOPs of one training step per image (forward + backward; the optimizer's few are left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_depth_net("cdcn_u", width=args.width, image_size=args.image_size).to(device).train()
    model.memory_efficient = False  # count the plain graph the GPU runs
    x = torch.randn(2, 3, args.image_size, args.image_size, device=device)
    target = torch.rand(2, args.image_size // 8, args.image_size // 8, device=device)
    with FlopCounterMode(display=False) as counter:
        pred, mu, logvar = depth_outputs(model(x))
        dum_loss(pred, mu, logvar, target).total.backward()
    return counter.get_total_flops() / 2


def bench_variant(args, device, name: str, flops: float, peak) -> dict:
    dtype, use_tf32, channels_last, compiled = VARIANTS[name]
    torch.manual_seed(0)
    model = build_depth_net("cdcn_u", width=args.width, image_size=args.image_size).to(device).train()
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    if channels_last:
        model, x = to_channels_last(model, x)
    run_model = maybe_compile(model, compiled)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5)
    m = args.image_size // 8
    target = torch.rand(args.batch_size, m, m, device=device)
    generated = torch.arange(args.batch_size, device=device) >= int(args.batch_size * 0.75)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tf32(use_tf32):
        sec = timed(lambda: train_step(run_model, opt, x, target, generated, dtype), device, args.iters, args.warmup)
    ips = args.batch_size / sec
    tflops = ips * flops / 1e12
    ref = None if peak is None else peak[0] if dtype is not None else peak[1] if use_tf32 else peak[2]
    out = {"images_per_s": ips, "step_s": sec, "tflops": tflops, "fraction_of_peak": None if ref is None else tflops / ref,
           "peak_tflops": ref}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


# --------------------------------------------------------------------------------------------------
# Fused CDC node vs plain autograd


@contextmanager
def fused_path(enabled: bool):
    """Force networks/cdcn.py's choice of the fused BN-ReLU-conv training node on any device (or off)."""
    original = cdcn_module.use_memory_efficient
    cdcn_module.use_memory_efficient = lambda net, x: enabled and net.training and torch.is_grad_enabled()
    try:
        yield
    finally:
        cdcn_module.use_memory_efficient = original


def gradients(net, x, target, fused: bool, dtype=None) -> torch.Tensor:
    net = copy.deepcopy(net)  # each run starts from the same weights and BatchNorm statistics
    if dtype is not None:
        net, x, target = net.to(dtype), x.to(dtype), target.to(dtype)
    with fused_path(fused):
        out = net(x)
    # the losses on mu instead of the random DUM sample: float32 and float64 draw different noise
    dum_loss(out.mu, out.mu, out.logvar, target).total.backward()
    return torch.cat([p.grad.flatten().double() for p in net.parameters()])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def fused_check(args, device) -> dict:
    """Relative L2 gradient differences (all parameters): what differs between fused and plain, and why."""
    torch.manual_seed(0)
    s = args.check_size
    net = build_depth_net("cdcn_u", width=0.25, image_size=s).to(device).train()
    x = torch.randn(args.check_batch, 3, s, s, device=device)
    target = torch.rand(args.check_batch, s // 8, s // 8, device=device)
    res = {}
    g64 = gradients(net, x, target, False, torch.float64)
    res["float64: fused vs plain (the math)"] = rel(gradients(net, x, target, True, torch.float64), g64)
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        for use_tf32 in (False, True):
            with tf32(use_tf32):
                tag = "TF32 on" if use_tf32 else "TF32 off"
                plain = gradients(net, x, target, False)
                res[f"fp32 {tag}: plain vs plain (run-to-run)"] = rel(gradients(net, x, target, False), plain)
                res[f"fp32 {tag}: fused vs plain"] = rel(gradients(net, x, target, True), plain)
                res[f"fp32 {tag}: plain vs float64"] = rel(plain, g64)
                res[f"fp32 {tag}: fused vs float64"] = rel(gradients(net, x, target, True), g64)
        # One ulp on the input: how far fp32 gradients move when the forward rounds differently
        # (ReLU signs and max-pool winners decided by last bits).
        x_ulp = torch.nextafter(x, torch.full_like(x, float("inf")))
        res["fp32 TF32 off: plain, input moved by 1 ulp"] = rel(gradients(net, x_ulp, target, False),
                                                               gradients(net, x, target, False))
        if device.type == "cuda":
            torch.backends.cudnn.enabled = False  # BatchNorm on both paths by the same native kernels
            res["fp32 cuDNN off: fused vs plain"] = rel(gradients(net, x, target, True), gradients(net, x, target, False))
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled = old
    return res


# --------------------------------------------------------------------------------------------------
# Loader and generator


def synthetic_tree(root: Path, size: int = 256, videos: int = 8, frames: int = 8) -> Path:
    """A crop tree of smooth random 256 px JPEG faces and depth maps, with its train list."""
    dirs, rng, lines = split_dirs(root, "train"), np.random.default_rng(0), []
    for v in range(videos):
        video = f"1_1_{v + 1:02d}_{1 + v % 5}"
        for n in range(1, frames + 1):
            image = cv2.resize(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (size, size))
            (dirs["img"] / video).mkdir(parents=True, exist_ok=True)
            (dirs["depth"] / video).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dirs["img"] / video / frame_name(video, n)), image)
            cv2.imwrite(str(dirs["depth"] / video / depth_name(frame_name(video, n))), image[:, :, 0])
        lines.append(f"{'+1' if v % 5 == 0 else '-1'},{video}")
    (root / "Train.txt").write_text("\n".join(lines) + "\n")
    return root / "Train.txt"


def bench_loader(args, workers: int, tmp: Path) -> float:
    crop_root, train_list = (args.crop_root, args.train_list) if args.crop_root else (tmp, tmp / "Train.txt")
    ds = DepthTrainDataset(read_protocol(train_list), crop_root, "train", args.image_size, args.image_size // 8,
                           AugmentConfig())
    n_items = args.loader_batches * args.batch_size
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=RandomSampler(ds, replacement=True, num_samples=n_items),
                        num_workers=workers, pin_memory=torch.cuda.is_available())
    t0, n = time.perf_counter(), 0
    for batch in loader:  # worker start-up included: a new epoch pays it too
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - t0)


def bench_generator(args, device, dtype) -> float:
    torch.manual_seed(0)
    vae = DualVAE.from_config(image_size=args.gen_size, width=args.gen_width).to(device).train()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-4)
    spoof = torch.rand(args.gen_batch, 3, args.gen_size, args.gen_size, device=device)
    live = torch.rand_like(spoof)

    def step():
        with autocast(device, dtype):
            o = vae(spoof, live)
        loss = (reconstruction_loss(o.rec_spoof.float(), spoof) + reconstruction_loss(o.rec_live.float(), live)
                + kl_loss(o.mu_id_spoof.float(), o.logvar_id_spoof.float()) + kl_loss(o.mu_type.float(), o.logvar_type.float())
                + kl_loss(o.mu_id_live.float(), o.logvar_id_live.float()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return args.gen_batch / timed(step, device, args.iters, args.warmup)


def guarded(what: str, fn, *args) -> dict:
    """``fn(*args)``; a failure (e.g. torch.compile without a compiler) is printed and recorded, and the
    remaining measurements still run: one run should bring back every figure it can."""
    try:
        return fn(*args)
    except Exception as exc:  # any failure of one measurement; the others are independent
        log.exception("%s failed", what)
        print(f"{what}: FAILED ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"error": f"{type(exc).__name__}: {exc}"}


def run(args) -> dict:
    device = resolve_device(args.device)
    res = {"device": str(device), "torch": torch.__version__, "image_size": args.image_size, "width": args.width,
           "batch_size": args.batch_size, "default_cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
    peak = peaks(args, device)
    res["peak_tflops_bf16_tf32_fp32"] = peak
    flops = step_flops(args, device)
    res["gflop_per_image_step"] = flops / 1e9
    print(f"{res.get('gpu', device)}: CDCN+DUM {args.image_size} px, width {args.width}, batch {args.batch_size}, "
          f"{flops / 1e9:.1f} GFLOP per image per step; peaks (bf16, TF32, fp32) {peak or 'unknown'} TFLOP/s", flush=True)
    res["steps"] = {}
    for name in args.variants:
        r = res["steps"][name] = guarded(f"step {name}", bench_variant, args, device, name, flops, peak)
        if "error" in r:
            continue
        frac = "?" if r["fraction_of_peak"] is None else f"{100 * r['fraction_of_peak']:.1f} %"
        print(f"step {name:16s} {r['images_per_s']:9.1f} images/s  {r['tflops']:7.2f} TFLOP/s  {frac} of peak"
              + (f"  {r['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in r else ""), flush=True)
    res["fused_cdc_check"] = guarded("fused CDC check", fused_check, args, device)
    for k, v in res["fused_cdc_check"].items():
        if k != "error":
            print(f"fused CDC check: {k}: relative L2 {v:.2e}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.crop_root and args.loader_workers:
            synthetic_tree(Path(tmp), args.image_size)
        res["loader_images_per_s"] = {}
        for w in args.loader_workers:
            r = guarded(f"loader {w} workers", lambda: {"images_per_s": bench_loader(args, w, Path(tmp))})
            res["loader_images_per_s"][w] = r.get("images_per_s", r)
            if "images_per_s" in r:
                print(f"loader {w:2d} workers {r['images_per_s']:9.1f} images/s", flush=True)
    res["generator_pairs_per_s"] = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with tf32(False):
            r = guarded(f"generator {name}", lambda: {"pairs_per_s": bench_generator(args, device, dtype)})
        res["generator_pairs_per_s"][name] = r.get("pairs_per_s", r)
        if "pairs_per_s" in r:
            print(f"generator {name} {args.gen_size} px batch {args.gen_batch}: {r['pairs_per_s']:.1f} pairs/s", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(None)
    return run(args)


if __name__ == "__main__":
    main()
