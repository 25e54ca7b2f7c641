"""Real/generated batch sampler of the depth network (docs/ORIGINAL.md 3.6), sharded by rank for DDP.

Per global batch: ``int(batch_size * ratio)`` real items (48 of 64) then the generated rest (16).

* Real items: pairs of adjacent list lines (2j, 2j+1), as the original (a DVG leftover that keeps
  e.g. the live and print video of one session together). The pair order is a fresh permutation
  every epoch; the permuted sequence is cut into batches (repeated from its start when the epoch
  needs more real items than there are, as the original's ``mod`` indexing did).
* Generated items: drawn anew for every batch, distinct within a batch, so they repeat across
  batches (the original's ``random.sample`` per batch).
* Batches per epoch (``epoch_rule``): ``original`` (default) is the original's
  ``max(n_real, n_gen) // real_per_batch`` (1200 real, 700 generated -> 25): when the generated
  items outnumber the real ones an epoch is longer and real items repeat within it, and when the
  real count is not a multiple of 48 the leftover reals wait for the next epoch's permutation.
  ``real`` is ``ceil(n_real / real_per_batch)``: every real item exactly once per epoch, whatever the
  generated count. The two agree on the original's Protocol 1 list; at least one batch either way.

Under DDP every rank computes the same global batches from ``(seed, epoch)`` and keeps its own
slice: real positions ``rank::world`` and generated positions ``rank::world`` of each global batch.
The shards are therefore disjoint and together are exactly the single-process batch, so the
effective batch (and its 48:16 composition) does not depend on the number of processes.

Each element yielded is ``(dataset_index, draw_key)``: the key is the item's position in the
epoch's global stream, and the dataset seeds its frame choice and augmentation from
``(seed, epoch, draw_key)`` so results do not depend on worker count or world size.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


EPOCH_RULES = ("original", "real")


class RealGeneratedBatchSampler(Sampler):
    def __init__(self, real_indices: Sequence[int], generated_indices: Sequence[int], batch_size: int = 64,
                 ratio: float = 0.75, seed: int = 0, rank: int = 0, world_size: int = 1,
                 epoch_rule: str = "original"):
        if epoch_rule not in EPOCH_RULES:
            raise ValueError(f"epoch_rule must be one of {EPOCH_RULES}, got {epoch_rule!r}")
        self.epoch_rule = epoch_rule
        self.real = [int(i) for i in real_indices]
        self.generated = [int(i) for i in generated_indices]
        if not self.real:
            raise ValueError("the batch sampler needs at least one real item")
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.batch_size, self.ratio, self.seed = int(batch_size), float(ratio), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        # Without generated data every slot goes to real items (a plain real-only run).
        self.n_real_per_batch = int(self.batch_size * self.ratio) if self.generated else self.batch_size
        self.n_gen_per_batch = self.batch_size - self.n_real_per_batch
        if self.n_real_per_batch < 1:
            raise ValueError(f"batch size {batch_size} x ratio {ratio} leaves no real item per batch")
        for what, n in (("real", self.n_real_per_batch), ("generated", self.n_gen_per_batch)):
            if n % self.world_size:
                raise ValueError(f"{n} {what} items per batch (batch {batch_size}, ratio {ratio}) do not split "
                                 f"evenly over {self.world_size} processes; pick a batch size that does")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.epoch_rule == "real":
            return math.ceil(len(self.real) / self.n_real_per_batch)
        return max(1, max(len(self.real), len(self.generated)) // self.n_real_per_batch)

    def global_batches(self, epoch: int | None = None) -> list[tuple[list[int], list[int]]]:
        """``[(real indices, generated indices), ...]`` of one epoch, before sharding."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch, 0x5A4D])
        pairs = [self.real[j:j + 2] for j in range(0, len(self.real), 2)]
        order = [i for p in rng.permutation(len(pairs)) for i in pairs[p]]
        n_batches, n_r = len(self), self.n_real_per_batch
        need = n_batches * n_r
        stream = (order * math.ceil(need / len(order)))[:need]
        batches = []
        for b in range(n_batches):
            real = stream[b * n_r:(b + 1) * n_r]
            gen: list[int] = []
            if self.n_gen_per_batch:
                pick = rng.choice(len(self.generated), self.n_gen_per_batch,
                                  replace=len(self.generated) < self.n_gen_per_batch)
                gen = [self.generated[i] for i in pick]
            batches.append((real, gen))
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        r, w, bs, n_r = self.rank, self.world_size, self.batch_size, self.n_real_per_batch
        for b, (real, gen) in enumerate(self.global_batches()):
            base = b * bs
            local = [(idx, base + pos) for pos, idx in enumerate(real)][r::w]
            local += [(idx, base + n_r + pos) for pos, idx in enumerate(gen)][r::w]
            yield local
