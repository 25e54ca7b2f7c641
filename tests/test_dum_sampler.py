"""Real/generated batch sampler: composition, once-per-epoch reals, adjacent pairs, DDP shards."""
from __future__ import annotations

from collections import Counter

import pytest

from DUM.sampler import RealGeneratedBatchSampler

REAL = list(range(24))          # dataset order: reals first ...
GEN = list(range(24, 34))       # ... then generated (the sampler does not rely on it)


def test_composition_6_to_2_and_every_real_once():
    s = RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, seed=3)
    s.set_epoch(1)
    batches = list(s)
    assert len(batches) == len(s) == 4
    real_seen = Counter()
    for batch in batches:
        idx = [i for i, _ in batch]
        real = [i for i in idx if i in REAL]
        gen = [i for i in idx if i in GEN]
        assert len(real) == 6 and len(gen) == 2            # 48:16 scaled down
        assert idx[:6] == real                            # real first, then generated
        assert len(set(gen)) == 2                         # distinct within a batch
        real_seen.update(real)
    assert real_seen == Counter(REAL)                     # each real item exactly once per epoch
    keys = [k for b in batches for _, k in b]
    assert len(keys) == len(set(keys))                    # draw keys unique within the epoch


def test_original_numbers_25_batches_of_48_plus_16():
    s = RealGeneratedBatchSampler(range(1200), range(1200, 1900), batch_size=64, ratio=0.75)
    s.set_epoch(7)
    batches = list(s)
    assert len(batches) == 25
    assert all(len(b) == 64 for b in batches)
    assert Counter(i for b in batches for i, _ in b if i < 1200) == Counter(range(1200))
    assert sum(1 for b in batches for i, _ in b if i >= 1200) == 400


def test_real_items_come_in_adjacent_pairs():
    s = RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, seed=0)
    for real, _ in s.global_batches(2):
        for a, b in zip(real[0::2], real[1::2]):
            assert a % 2 == 0 and b == a + 1


def test_epochs_differ_and_are_reproducible():
    s = RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, seed=5)
    assert s.global_batches(1) == RealGeneratedBatchSampler(REAL, GEN, 8, 0.75, seed=5).global_batches(1)
    assert s.global_batches(1) != s.global_batches(2)
    assert s.global_batches(1) != RealGeneratedBatchSampler(REAL, GEN, 8, 0.75, seed=6).global_batches(1)


def test_ddp_shards_are_disjoint_and_rebuild_the_global_batch():
    world = 2
    single = RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, seed=1)
    shards = [RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, seed=1, rank=r, world_size=world)
              for r in range(world)]
    for s in (single, *shards):
        s.set_epoch(4)
    full = list(single)
    per_rank = [list(s) for s in shards]
    assert all(len(p) == len(full) for p in per_rank)
    all_real = Counter()
    for b, global_batch in enumerate(full):
        parts = [p[b] for p in per_rank]
        assert all(len(part) == 4 for part in parts)                     # 3 real + 1 generated per rank
        assert all(sum(i in GEN for i, _ in part) == 1 for part in parts)
        keys = [set(k for _, k in part) for part in parts]
        assert not keys[0] & keys[1]                                      # disjoint draws
        assert sorted(k for part in parts for _, k in part) == sorted(k for _, k in global_batch)
        assert not {i for i, _ in parts[0]} & {i for i, _ in parts[1]}    # disjoint items
        all_real.update(i for part in parts for i, _ in part if i in REAL)
    assert all_real == Counter(REAL)                                      # together: every real once


def test_uneven_real_count_wraps_and_real_only_mode():
    s = RealGeneratedBatchSampler(range(10), range(10, 14), batch_size=8, ratio=0.75, epoch_rule="real")
    batches = list(s)
    assert len(batches) == 2
    real = Counter(i for b in batches for i, _ in b if i < 10)
    assert set(real) == set(range(10)) and sum(real.values()) == 12   # 2 filled from the start again
    only = RealGeneratedBatchSampler(range(10), [], batch_size=4, epoch_rule="real")
    assert only.n_real_per_batch == 4 and only.n_gen_per_batch == 0
    seen = Counter(i for b in only for i, _ in b)
    assert len(only) == 3 and set(seen) == set(range(10)) and sum(seen.values()) == 12


@pytest.mark.parametrize("n_real, n_gen, original, real", [
    (10, 4, 1, 2),     # reals not a multiple of 6: the original drops the leftover, ours wraps
    (12, 30, 5, 2),    # more generated than real: the original's epoch is longer, reals repeat
    (24, 10, 4, 4),    # the two rules agree (as on the original's Protocol 1 list, 1200 / 700)
    (3, 2, 1, 1),      # fewer reals than one batch: one batch either way
])
def test_batches_per_epoch_rules(n_real, n_gen, original, real):
    real_ids, gen_ids = range(n_real), range(n_real, n_real + n_gen)
    default = RealGeneratedBatchSampler(real_ids, gen_ids, batch_size=8, ratio=0.75)
    assert default.epoch_rule == "original" and original == max(1, max(n_real, n_gen) // 6)
    assert len(default) == original == len(list(default))
    ours = RealGeneratedBatchSampler(real_ids, gen_ids, batch_size=8, ratio=0.75, epoch_rule="real")
    assert len(ours) == real == len(list(ours))
    used = Counter(i for b in default for i, _ in b if i < n_real)
    assert sum(used.values()) == 6 * original
    if 6 * original >= n_real:
        assert set(used) == set(real_ids)        # every real item at least once
    else:
        assert len(used) == 6 * original         # distinct: the leftover reals wait for another epoch


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="split evenly"):
        RealGeneratedBatchSampler(REAL, GEN, batch_size=8, ratio=0.75, rank=0, world_size=4)  # 2 gen / 4 ranks
    with pytest.raises(ValueError, match="real item"):
        RealGeneratedBatchSampler([], GEN, batch_size=8)
