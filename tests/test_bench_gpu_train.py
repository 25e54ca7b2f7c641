"""bench/bench_gpu_train.py on the CPU: every section runs (tiny sizes) and the fused-CDC check finds
the fused BatchNorm-ReLU-conv node's gradients equal to plain autograd's in float64."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_gpu_train  # noqa: E402

from DUM.inference import torch_threads  # noqa: E402


def test_cpu_smoke_run_prints_every_figure(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    with torch_threads(1):
        res = bench_gpu_train.main(["--device", "cpu", "--image-size", "32", "--width", "0.25", "--batch-size", "2",
                                    "--iters", "1", "--warmup", "0", "--variants", "fp32", "bf16-cl",
                                    "--loader-workers", "0", "--loader-batches", "2", "--gen-size", "64", "--gen-width", "0.125",
                                    "--gen-batch", "2", "--check-size", "32", "--check-batch", "4",
                                    "--peak-tflops", "1", "1", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text())["steps"].keys() == {"fp32", "bf16-cl"}
    assert 0.2 < res["gflop_per_image_step"] < 0.4  # 315 GFLOP at 256 px, width 1: / 64 (pixels) / 16 (width^2)
    for name, r in res["steps"].items():
        assert r["images_per_s"] > 0 and r["fraction_of_peak"] == pytest.approx(r["tflops"])
        assert f"step {name}" in printed
    check = res["fused_cdc_check"]
    assert check["float64: fused vs plain (the math)"] < 1e-12
    assert check["fp32 TF32 off: fused vs plain"] < 1e-5
    assert 0 < check["fp32 TF32 off: plain vs float64"] < 1e-2
    assert res["loader_images_per_s"][0] > 0 and all(v > 0 for v in res["generator_pairs_per_s"].values())


def test_fused_path_switch_reaches_the_fused_node(monkeypatch):
    import torch

    import networks.cdc as cdc

    calls = []
    original = cdc._BNReLUThen.apply
    monkeypatch.setattr(cdc._BNReLUThen, "apply", lambda *a: calls.append(1) or original(*a))
    net = bench_gpu_train.build_depth_net("cdcn_u", width=0.25, image_size=32).train()
    x, target = torch.randn(2, 3, 32, 32), torch.rand(2, 4, 4)
    bench_gpu_train.gradients(net, x, target, fused=False)
    assert not calls
    bench_gpu_train.gradients(net, x, target, fused=True)
    assert len(calls) > 10  # every BN-ReLU-(conv|pool) of the trunk


def test_a_failing_measurement_is_recorded_and_the_run_goes_on(capsys):
    res = bench_gpu_train.guarded("step x", lambda: 1 / 0)
    assert res["error"].startswith("ZeroDivisionError") and "step x: FAILED" in capsys.readouterr().out
    assert bench_gpu_train.guarded("step y", lambda a: {"v": a}, 3) == {"v": 3}
