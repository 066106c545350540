import itertools
import logging

import numpy as np
import pytest
import torch

from detrun.data import (
    DatasetMapper,
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    build_test_loader,
    build_train_loader,
    load_coco_json,
)
from detrun.data.samplers import GroupedBatchSampler, repeat_factors_from_category_frequency
from detrun.data.transforms import RandomFlip


@pytest.mark.parametrize("size", [7, 10])
def test_inference_sampler_covers_each_item_once_in_order(size):
    shards = [list(InferenceSampler(size, rank=r, world_size=2)) for r in range(2)]
    assert shards[0] + shards[1] == list(range(size))
    assert abs(len(shards[0]) - len(shards[1])) <= 1


def test_training_sampler_shards_each_epoch_across_ranks():
    size = 11
    streams = [TrainingSampler(size, seed=3, rank=r, world_size=2) for r in range(2)]
    # the first 2 epochs of the global stream, split between the ranks by position
    taken = [list(itertools.islice(s, size)) for s in streams]
    merged = [x for pair in zip(*taken) for x in pair]
    assert sorted(merged[:size]) == list(range(size)) and sorted(merged[size:2 * size]) == list(range(size))
    assert set(taken[0][:5]).isdisjoint(taken[1][:5])
    # deterministic from the seed, different between epochs and seeds
    single = list(itertools.islice(TrainingSampler(size, seed=3), 2 * size))
    assert single == merged
    assert single[:size] != single[size:]
    assert single != list(itertools.islice(TrainingSampler(size, seed=4), 2 * size))


def test_repeat_factor_sampler_oversamples_rare_classes():
    records = [{"annotations": [{"category_id": 0}]} for _ in range(9)] + [{"annotations": [{"category_id": 1}]}]
    factors = repeat_factors_from_category_frequency(records, repeat_thresh=0.5)
    assert factors[:9] == [1.0] * 9 and factors[9] == pytest.approx(np.sqrt(0.5 / 0.1))
    counts = np.bincount(list(itertools.islice(RepeatFactorTrainingSampler(factors, seed=0), 5000)), minlength=10)
    assert counts[9] / counts[0] == pytest.approx(np.sqrt(5), rel=0.15)


def test_grouped_batches_share_orientation():
    group_ids = [0, 1] * 10
    batches = GroupedBatchSampler(TrainingSampler(20, seed=0), group_ids=group_ids, batch_size=3)
    for batch in itertools.islice(batches, 10):
        assert len({group_ids[i] for i, _ in batch}) == 1 and len(batch) == 3


@pytest.fixture
def train_records(coco_dir):
    return load_coco_json(coco_dir[0], coco_dir[1])


def _summary(batch):
    return [(d["image_id"], d["image"].float().sum().item(), d["instances"].gt_boxes.tensor.sum().item()) for d in batch]


def test_train_loader_resumes_and_is_independent_of_workers(train_records):
    def build(**kw):
        mapper = DatasetMapper(is_train=True, augmentations=[RandomFlip(prob=0.5)])
        return build_train_loader(dataset=train_records, mapper=mapper, total_batch_size=2, seed=7, **kw)

    loader = build()
    reference = [_summary(b) for b in itertools.islice(loader, 6)]
    assert loader.state_dict() == {"batches_consumed": 6}
    assert {i for b in reference for i, _, _ in b} == {4, 10}  # the image without annotations is filtered
    assert len({s for b in reference for s in b}) > 2  # flips vary per sample

    resumed = build()
    resumed.load_state_dict({"batches_consumed": 3})
    assert [_summary(b) for b in itertools.islice(resumed, 3)] == reference[3:]
    assert [_summary(b) for b in itertools.islice(build(start_iter=4), 2)] == reference[4:]
    # worker processes load the same samples (augmentation seeds come from the stream position)
    assert [_summary(b) for b in itertools.islice(build(num_workers=2), 6)] == reference


def test_train_loader_ranks_get_their_own_shard(train_records):
    mapper = DatasetMapper(is_train=True)
    ids = [[d["image_id"] for b in itertools.islice(build_train_loader(dataset=train_records * 2, mapper=mapper,
           total_batch_size=2, rank=r, world_size=2, aspect_ratio_grouping=False), 2) for d in b] for r in range(2)]
    assert len(ids[0]) == len(ids[1]) == 2  # per-rank batch = total / world size
    with pytest.raises(ValueError, match="not divisible"):
        build_train_loader(dataset=train_records, mapper=mapper, total_batch_size=3, rank=0, world_size=2)


def test_test_loader_visits_every_image_once_across_ranks(train_records):
    mapper = DatasetMapper(is_train=False)
    seen = []
    for rank in range(2):
        loader = build_test_loader(dataset=train_records, mapper=mapper, rank=rank, world_size=2)
        seen += [d["image_id"] for batch in loader for d in batch]
    assert seen == [r["image_id"] for r in train_records]


def test_skip_mode_replaces_bad_images_with_a_warning(train_records, caplog):
    broken = [dict(train_records[0], file_name="/nonexistent.png")] + train_records[1:]
    loader = build_train_loader(dataset=broken, mapper=DatasetMapper(is_train=True), total_batch_size=2,
                                on_error="skip", aspect_ratio_grouping=False)
    with caplog.at_level(logging.WARNING):
        batches = list(itertools.islice(loader, 3))
    assert all(d["file_name"] != "/nonexistent.png" for b in batches for d in b)
    assert "skipping a bad image" in caplog.text and "/nonexistent.png" in caplog.text
    strict = build_train_loader(dataset=broken, mapper=DatasetMapper(is_train=True), total_batch_size=2,
                                aspect_ratio_grouping=False)
    with pytest.raises(Exception, match="nonexistent.png"):
        list(itertools.islice(strict, 3))
    assert torch.is_tensor(batches[0][0]["image"])
