"""Data sets by name, and the train/test loaders built from records + a mapper.

Loaders yield ``list[dict]`` batches (no stacking; the model pads with ImageList).
"""
from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from .catalog import DatasetCatalog, MetadataCatalog
from .problems import DataError, ProblemLog
from .registrations import Snapshot, restore, snapshot
from .samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    dist_rank_and_size,
    repeat_factors_from_category_frequency,
)
from .validation import validate_records

logger = logging.getLogger(__name__)


def get_dataset(names: str | Sequence[str], *, on_error: str = "raise") -> list[dict]:
    """Records of one or more registered data sets, concatenated, checked for bad annotations.

    `on_error`: "raise" at the first bad annotation (DataError naming file and annotation id), or
    "skip" it with one counted warning, for every kind of data set (COCO, shapes, your own
    function); "skip" also overrides a data set registered with ``on_error="raise"``. Several
    names must share thing_classes.
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("get_dataset needs at least one data set name")
    records, classes = [], None
    for name in names:
        meta = MetadataCatalog.get(name)
        # Loaders that check annotations themselves (COCO, shapes) skip too; "raise" keeps their own choice.
        recs = DatasetCatalog.get(name, on_error="skip" if on_error == "skip" else None)
        source = str(meta.get("json_file") or f"data set '{name}'")
        log = ProblemLog(on_error)
        keypoint_names = meta.get("keypoint_names")
        recs = validate_records(recs, source=source, log=log, num_classes=len(meta.thing_classes) if meta.get("thing_classes") else None,
                                num_keypoints=len(keypoint_names) if keypoint_names else None)
        log.warn_summary(source)
        if not recs:
            raise DataError(f"data set '{name}' ({source}) has no images")
        if classes is not None and meta.get("thing_classes") != classes:
            raise DataError(f"data sets {names} have different thing_classes; they can't be mixed in one loader")
        classes = meta.get("thing_classes")
        records.extend(recs)
    return records


class SerializedList:
    """Records pickled into one numpy byte buffer. Forked loader workers then share one object instead
    of touching (and so copying, by refcount writes) millions of small Python objects."""

    def __init__(self, items: Sequence):
        blobs = [pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL) for x in items]
        self._ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
        self._data = np.frombuffer(b"".join(blobs), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int):
        start = int(self._ends[i - 1]) if i > 0 else 0
        return pickle.loads(memoryview(self._data[start: int(self._ends[i])]))


class MapDataset(Dataset):
    """records[i] → mapper(record, rng). Keys are ``i`` or ``(i, seed)``; the seed (default: i) makes
    the sample's augmentations reproducible. With ``on_error="skip"`` an unreadable image is
    replaced by the next record, with a counted warning."""

    def __init__(self, records: Sequence[dict], mapper: Callable, *, on_error: str = "raise"):
        self.records = SerializedList(records)
        self.mapper, self.on_error, self.skipped = mapper, on_error, 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, key)
        for attempt in range(len(self)):
            record = self.records[(index + attempt) % len(self)]
            try:
                return self.mapper(record, np.random.default_rng(seed))
            except DataError as exc:
                if self.on_error != "skip":
                    raise
                self.skipped += 1
                logger.warning("skipping a bad image (%d skipped so far in this process): %s", self.skipped, exc)
        raise DataError("every image of the data set failed to load; see the warnings above")


def _list_collate(batch: list[dict]) -> list[dict]:
    return batch


def _worker_init(registrations: Snapshot, _: int) -> None:
    # One thread per worker: workers are processes already, and CPU training needs the cores.
    torch.set_num_threads(1)
    # A worker started fresh (spawn/forkserver) lacks what a recipe registered; mappers may look it up.
    restore(registrations)


def _worker_init_fn(num_workers: int) -> Callable[[int], None] | None:
    return functools.partial(_worker_init, snapshot()) if num_workers > 0 else None


class TrainLoader:
    """Infinite iterable of training batches (list[dict], `batch_size` per rank).

    Resumable: ``state_dict()`` holds the number of batches handed out; after
    ``load_state_dict(state)`` the next iteration continues right after them (the sampler
    skips ahead by index only, without reading images).
    """

    def __init__(self, dataset: MapDataset, batch_sampler: GroupedBatchSampler, *, num_workers: int):
        self.dataset, self.batch_sampler, self.num_workers = dataset, batch_sampler, num_workers
        self.batches_consumed = batch_sampler.start_batch
        self.batch_size = batch_sampler.batch_size

    def __iter__(self) -> Iterator[list[dict]]:
        self.batch_sampler.start_batch = self.batches_consumed
        loader = DataLoader(
            self.dataset, batch_sampler=self.batch_sampler, collate_fn=_list_collate, num_workers=self.num_workers,
            worker_init_fn=_worker_init_fn(self.num_workers),
            prefetch_factor=4 if self.num_workers > 0 else None,
        )
        for batch in loader:
            self.batches_consumed += 1
            yield batch

    def state_dict(self) -> dict:
        return {"batches_consumed": self.batches_consumed}

    def load_state_dict(self, state: dict) -> None:
        self.batches_consumed = int(state["batches_consumed"])


def build_train_loader(*, dataset: Sequence[dict], mapper: Callable, total_batch_size: int, num_workers: int = 0,
                       aspect_ratio_grouping: bool = True, shuffle: bool = True, seed: int = 0,
                       repeat_threshold: float | None = None, filter_empty: bool = True, on_error: str = "raise",
                       start_iter: int = 0, rank: int | None = None, world_size: int | None = None) -> TrainLoader:
    """Infinite training loader over `dataset` records.

    Args:
        dataset: records (e.g. ``get_dataset(...)`` or ``shapes_dataset(...)``).
        mapper: record, rng → model input dict (e.g. ``DatasetMapper(is_train=True, ...)``).
        total_batch_size: images per step summed over ranks (must divide by the world size).
        num_workers: loader worker processes (0: load in the training process).
        aspect_ratio_grouping: batch landscape and portrait images separately.
        shuffle, seed: order of the infinite stream (a new permutation each epoch).
        repeat_threshold: if set, oversample images with rare classes (LVIS repeat factor sampling).
        filter_empty: drop images without non-crowd annotations, unless they have a label map
            (``sem_seg_file_name``: semantic/panoptic training learns from them too).
        on_error: "skip" unreadable images (counted warning) instead of raising.
        start_iter: batches to skip (resume); or use the loader's state_dict / load_state_dict.
        rank, world_size: defaults from torch.distributed (each rank reads its own shard).
    """
    rank, world_size = dist_rank_and_size(rank, world_size)
    if total_batch_size % world_size:
        raise ValueError(f"total_batch_size {total_batch_size} is not divisible by the world size {world_size}")
    records = list(dataset)
    if filter_empty:
        kept = [r for r in records if r.get("sem_seg_file_name")
                or any(not a.get("iscrowd", 0) for a in r.get("annotations", []))]
        if len(kept) < len(records):
            logger.info("training on %d images: dropped %d without annotations", len(kept), len(records) - len(kept))
        records = kept
    if not records:
        raise DataError("no training images left (all lack annotations?)")
    if repeat_threshold:
        factors = repeat_factors_from_category_frequency(records, repeat_threshold)
        sampler = RepeatFactorTrainingSampler(factors, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    else:
        sampler = TrainingSampler(len(records), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    group_ids = [int(r["width"] >= r["height"]) for r in records] if aspect_ratio_grouping else None
    batch_sampler = GroupedBatchSampler(sampler, group_ids=group_ids, batch_size=total_batch_size // world_size,
                                        seed=seed, start_batch=start_iter)
    return TrainLoader(MapDataset(records, mapper, on_error=on_error), batch_sampler, num_workers=num_workers)


def build_test_loader(*, dataset: Sequence[dict], mapper: Callable, batch_size: int = 1, num_workers: int = 0,
                      rank: int | None = None, world_size: int | None = None) -> DataLoader:
    """Loader visiting every record exactly once across ranks (this rank: one contiguous block, in order)."""
    records = list(dataset)
    sampler = InferenceSampler(len(records), rank=rank, world_size=world_size)
    return DataLoader(
        MapDataset(records, mapper), batch_sampler=BatchSampler(sampler, batch_size, drop_last=False),
        collate_fn=_list_collate, num_workers=num_workers, worker_init_fn=_worker_init_fn(num_workers),
    )
