"""Functions that ``torch.multiprocessing.spawn`` runs in each gloo process of the multi-process tests
(importable by the spawned interpreters, so not inside a test module)."""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_with_nan_on_rank_1(rank: int) -> str:
    from DUM.engine import train_one_epoch
    from networks import build_depth_net
    from utils.training import NonFiniteLossError, grad_scaler

    torch.manual_seed(0)
    net = build_depth_net("cdcn_u", width=0.25, image_size=32)
    model = torch.nn.parallel.DistributedDataParallel(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(rank)
    batches = []
    for step in range(3):
        image = torch.rand(2, 3, 32, 32, generator=g)
        if rank == 1 and step == 1:
            image[0, 0, 5, 5] = float("nan")
        batches.append({"image": image, "depth": torch.rand(2, 4, 4, generator=g),
                        "generated": torch.tensor([False, True])})
    try:
        train_one_epoch(model, batches, optimizer, grad_scaler(torch.device("cpu"), None), torch.device("cpu"),
                        epoch=3, is_main=rank == 0)
    except NonFiniteLossError as exc:
        return str(exc)
    return "finished"


def nan_on_one_rank_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One DUM training step under DDP where rank 1's batch holds a NaN pixel: every rank must stop
    with the same NonFiniteLossError at that step instead of waiting in DDP's gradient all-reduce."""
    from utils.dist import cleanup

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout: a rank left waiting fails the test within a minute instead of hanging
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    outcome = _train_with_nan_on_rank_1(rank)
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w", encoding="utf-8") as f:
        f.write(outcome)
    cleanup()
