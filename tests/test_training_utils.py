"""utils.training: the run infrastructure the three trainers share (metrics CSV, resume, precision,
the all-ranks non-finite-loss guard) and the DDP helpers of utils.dist."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from utils.io import InputError
from utils.training import (MetricsCSV, NonFiniteLossError, autocast_dtype, check_finite, grad_scaler,
                            resume_path, save_on_master)


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def test_metrics_csv_grows_extra_columns_and_drops_replayed_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    m = MetricsCSV(path, ["epoch", "loss"], keep_through_epoch=None)
    m.append({"epoch": 1, "loss": 0.5})
    m.append({"epoch": 2, "loss": 0.25, "sigma_mean": 0.125})  # a new per-epoch column
    m.append({"epoch": 3, "loss": 1 / 3})
    fields, rows = _rows(path)
    assert fields == ["epoch", "loss", "sigma_mean"]
    assert [r["sigma_mean"] for r in rows] == ["", "0.125", ""]
    assert rows[2]["loss"] == "0.333333"  # floats as %.6g by default
    # resume after epoch 2: epoch 3 is dropped (it will be replayed), the extra column is kept
    MetricsCSV(path, ["epoch", "loss"], keep_through_epoch=2, float_format=None).append({"epoch": 3, "loss": 1 / 3})
    fields, rows = _rows(path)
    assert fields == ["epoch", "loss", "sigma_mean"] and [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[2]["loss"] == repr(1 / 3)
    # a fresh run (no resume) starts an empty file
    MetricsCSV(path, ["epoch", "loss"], keep_through_epoch=None)
    assert _rows(path) == (["epoch", "loss"], [])


def test_resume_path_rules(tmp_path):
    assert resume_path("", tmp_path) is None and resume_path("auto", tmp_path) is None
    with pytest.raises(InputError, match="no such checkpoint"):
        resume_path("last", tmp_path)
    save_on_master(lambda: {"epoch": 1}, tmp_path / "last.pt")
    assert resume_path("auto", tmp_path) == tmp_path / "last.pt" == resume_path("last", tmp_path)
    assert resume_path("auto", tmp_path, no_resume=True) is None
    with pytest.raises(InputError, match="nope.pt"):
        resume_path(str(tmp_path / "nope.pt"), tmp_path)


def test_precision_policy_on_cpu_is_float32():
    cpu = torch.device("cpu")
    assert all(autocast_dtype(p, cpu) is None for p in ("off", "auto", "bf16", "fp16"))
    assert not grad_scaler(cpu, None).is_enabled()
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("fp8", cpu)


def test_check_finite_names_epoch_and_step():
    check_finite(torch.tensor(1.5), 1, 1)
    with pytest.raises(NonFiniteLossError, match=r"epoch 4, step 7 \(terms"):
        check_finite(torch.tensor(float("inf")), 4, 7, lambda: "terms")


@pytest.mark.slow
def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    import torch.multiprocessing as mp

    from tests.ddp_workers import free_port, nan_on_one_rank_worker

    mp.spawn(nan_on_one_rank_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert messages[0] == messages[1], messages
    assert "epoch 3, step 2 on process(es) 1 (process 1: loss nan" in messages[0]


def test_cleanup_frees_ddp_wrappers_before_destroying_the_group(tmp_path):
    """DDP sits in a reference cycle; left to the garbage collector it outlived the process group and
    gloo aborted at exit. cleanup() must free it first (checked with automatic collection off)."""
    import gc
    import weakref

    import torch.distributed as dist

    from tests.ddp_workers import free_port
    from utils.dist import cleanup

    def train_briefly():
        ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
        ddp(torch.randn(4, 3)).sum().backward()
        ddp.trainer = {"model": ddp}  # a cycle for certain (DDP's own cycles depend on its state)
        return weakref.ref(ddp)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    enabled = gc.isenabled()
    gc.disable()
    try:
        ref = train_briefly()
        assert ref() is not None  # the cycle keeps it: this is what the fix has to handle
        cleanup()
        assert ref() is None and not dist.is_initialized()
    finally:
        if enabled:
            gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()


def test_every_trainer_defaults_to_float32():
    import train_generator
    import train_lightcnn
    from DUM import train as dum_train

    assert train_generator.build_parser().parse_args([]).amp == "off"  # the paper trained in float32
    assert train_lightcnn.build_parser().parse_args(["--data-root", "faces"]).amp == "off"
    assert dum_train.build_parser().parse_args([]).amp == "off"
