"""DDP from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE). Absent: one process, no flag.

nccl on GPU, gloo on CPU. Only rank 0 writes, logs and shows progress.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.run import resolve_device, run_stage, save_config, setup_logging


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_object(obj) -> list:
    """Gather a picklable object from every rank (a list of one on a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy every buffer (BatchNorm running statistics) of ``module`` from rank ``src`` to all ranks."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=src)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too (every rank's loss depends on
    every rank's rows). Plain ``dist.all_reduce`` on the default group, looked up at call time."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def all_reduce_sum_autograd(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``tensor`` over all ranks (the tensor itself on a single process).

    Not ``torch.distributed.nn.functional.all_reduce``: that module binds ``group.WORLD`` as a default
    argument when it is first imported, so imported after ``init_process_group`` it keeps the process
    group alive past ``destroy_process_group``; gloo's threads were then torn down at interpreter exit
    and the process died with "terminate called without an active exception" (SIGABRT) in about one
    run in three.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _AllReduceSum.apply(tensor)


def cleanup() -> None:
    """Tear the process group down, after freeing what still uses it.

    A DistributedDataParallel wrapper sits in a reference cycle, so dropping the last reference does
    not free it: only the garbage collector does, at some later time or at interpreter exit. Its
    reducer then tore down gloo after ``destroy_process_group`` and the process could die with
    "terminate called without an active exception" (SIGABRT), which torchrun reports as a failed run.
    Collecting first frees every unreachable wrapper while the group is still alive.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def run_training_stage(args, train_fn, user_errors: tuple = ()) -> dict:
    """``main()`` of a script that runs alone or under torchrun: join the process group, log per rank,
    rank 0 writes ``config.json``, a user error exits 2 with its message (``utils.run.run_stage``),
    and the group is always torn down. ``train_fn(args, dist_info)`` does the work."""
    dist_info = init_distributed(args.device)
    setup_logging(args.out_dir, rank=dist_info.rank)

    def work(a):
        if dist_info.is_main:
            save_config(a, a.out_dir)
        return train_fn(a, dist_info)

    try:
        return run_stage(work, args, errors=user_errors)
    finally:
        cleanup()
