"""Samplers: which record indices each rank reads, in which order.

Training samplers are infinite and deterministic from a seed; under DDP each rank takes every
world_size-th index of the same global stream (its own shard). The inference sampler gives
each rank a contiguous block so that every index is seen exactly once across ranks, in order.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist


def dist_rank_and_size(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's when initialized, else (0, 1)."""
    initialized = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


class TrainingSampler:
    """Infinite stream of indices in [0, size): a new seeded permutation per epoch (or 0..size-1
    repeated if not `shuffle`), sharded by rank. Iterating again restarts the same stream."""

    def __init__(self, size: int, *, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty data set, got size {size}")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = dist_rank_and_size(rank, world_size)

    def _epoch(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def _global_stream(self) -> Iterator[int]:
        for epoch in itertools.count():
            yield from self._epoch(epoch).tolist()

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._global_stream(), self.rank, None, self.world_size)


class RepeatFactorTrainingSampler(TrainingSampler):
    """Like TrainingSampler, but record i appears about repeat_factors[i] times per epoch (stochastic
    rounding, fresh each epoch) — LVIS-style oversampling of images with rare classes."""

    def __init__(self, repeat_factors: Sequence[float], *, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__(len(repeat_factors), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
        self.repeat_factors = np.asarray(repeat_factors, dtype=np.float64)

    def _epoch(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        whole = np.floor(self.repeat_factors)
        reps = (whole + (rng.random(self.size) < self.repeat_factors - whole)).astype(np.int64)
        indices = np.repeat(np.arange(self.size), reps)
        return rng.permutation(indices) if self.shuffle else indices


def repeat_factors_from_category_frequency(records: list[dict], repeat_thresh: float) -> list[float]:
    """Per-record repeat factor max over its categories c of max(1, sqrt(repeat_thresh / f(c))),
    f(c) = fraction of records containing c (Gupta et al., LVIS, 2019)."""
    counts: dict[int, int] = {}
    for r in records:
        for c in {a["category_id"] for a in r.get("annotations", [])}:
            counts[c] = counts.get(c, 0) + 1
    n = len(records)
    cat_factor = {c: max(1.0, math.sqrt(repeat_thresh / (k / n))) for c, k in counts.items()}
    return [max((cat_factor[a["category_id"]] for a in r.get("annotations", [])), default=1.0) for r in records]


class InferenceSampler:
    """Indices [0, size) split into contiguous blocks, one per rank (sizes differ by at most 1)."""

    def __init__(self, size: int, *, rank: int | None = None, world_size: int | None = None):
        self.size = size
        self.rank, self.world_size = dist_rank_and_size(rank, world_size)
        per_rank, extra = divmod(size, self.world_size)
        self.start = self.rank * per_rank + min(self.rank, extra)
        self.end = self.start + per_rank + (1 if self.rank < extra else 0)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


class GroupedBatchSampler:
    """Batches of `batch_size` from an infinite index stream, each batch drawn from one group
    (e.g. landscape vs portrait images, so padding wastes little). Yields lists of
    ``(index, sample_seed)``: the seed drives that sample's augmentations, fixed by the position
    in the stream, so results don't depend on the number of loader workers.

    `start_batch` skips that many batches first (resuming a run): cheap, no data is read.
    """

    def __init__(self, sampler: TrainingSampler, *, group_ids: Sequence[int] | None, batch_size: int,
                 seed: int = 0, start_batch: int = 0):
        self.sampler, self.batch_size, self.seed, self.start_batch = sampler, batch_size, seed, start_batch
        self.group_ids = np.asarray(group_ids) if group_ids is not None else None

    def _batches(self) -> Iterator[list[tuple[int, int]]]:
        buckets: dict[int, list[tuple[int, int]]] = {}
        rank = getattr(self.sampler, "rank", 0)
        for position, index in enumerate(self.sampler):
            sample_seed = int(np.random.SeedSequence([self.seed, rank, position]).generate_state(1)[0])
            group = int(self.group_ids[index]) if self.group_ids is not None else 0
            bucket = buckets.setdefault(group, [])
            bucket.append((index, sample_seed))
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return itertools.islice(self._batches(), self.start_batch, None)

