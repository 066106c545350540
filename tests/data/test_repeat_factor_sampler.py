"""RepeatFactorTrainingSampler and LVIS's repeat factors: hand-computed factors, empirical repeat
rates over many epochs, determinism by seed, sharding across ranks, the train loader's switch."""
import itertools
import math

import numpy as np
import pytest

from detrun.data import DatasetMapper, RepeatFactorTrainingSampler, TrainingSampler, build_train_loader
from detrun.data.samplers import repeat_factors_from_category_frequency


def _records(category_sets):
    return [{"annotations": [{"category_id": c, "iscrowd": 0} for c in cats], "width": 10, "height": 10,
             "file_name": f"{i}.png", "image_id": i} for i, cats in enumerate(category_sets)]


def test_repeat_factors_by_hand():
    # 10 images: class 0 in all, class 1 in images 1-2 (f = 0.2), class 2 in image 3 only (f = 0.1)
    sets = [[0]] * 10
    sets[1], sets[2], sets[3] = [0, 1], [1, 0, 1], [2, 0]
    sets.append([])  # an 11th image without annotations; now f(0) = 10/11, f(1) = 2/11, f(2) = 1/11
    factors = repeat_factors_from_category_frequency(_records(sets), repeat_thresh=0.5)
    r1, r2 = math.sqrt(0.5 * 11 / 2), math.sqrt(0.5 * 11 / 1)  # sqrt(t / f(c)) for c = 1, 2; class 0: 1
    assert factors == pytest.approx([1.0, r1, r1, r2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # LVIS's threshold: a class in 1 of 2000 images (f = 0.0005) gets sqrt(0.001 / 0.0005) = sqrt(2);
    # one in 2 of 2000 images is at the threshold (factor 1): only rarer classes are oversampled
    sets = [[0]] * 2000
    sets[7], sets[8], sets[9] = [0, 5], [6], [6, 0]
    factors = repeat_factors_from_category_frequency(_records(sets), repeat_thresh=0.001)
    assert factors[7] == pytest.approx(math.sqrt(2)) and factors[8] == factors[9] == 1.0
    assert sum(f != 1.0 for f in factors) == 1


def _epochs(stream):
    """Split an unshuffled stream (each epoch: 0..size-1 ascending, repeats adjacent) into epochs."""
    epochs, current = [], []
    for i in stream:
        if current and i < current[-1]:
            epochs.append(current)
            current = []
        current.append(i)
    return epochs  # the last, possibly cut, epoch is dropped


def test_each_epoch_rounds_stochastically_and_rates_match_factors():
    factors = np.array([1.0, 1.25, 2.5, 3.9, 1.0 + 1e-9])
    stream = itertools.islice(RepeatFactorTrainingSampler(factors, shuffle=False, seed=5), 60000)
    epochs = _epochs(stream)
    counts = np.array([np.bincount(e, minlength=len(factors)) for e in epochs])  # [epochs, images]
    assert len(epochs) > 5000
    # every epoch repeats image i floor(r_i) or ceil(r_i) times
    assert ((counts == np.floor(factors)) | (counts == np.ceil(factors))).all()
    # mean repeats per epoch ≈ r_i; the standard error of a Bernoulli mean over > 5000 epochs is < 0.007
    np.testing.assert_allclose(counts.mean(0), factors, atol=0.03)
    # shuffled: the same rates, counted over the whole stream (proportional to r_i)
    shuffled = np.bincount(list(itertools.islice(RepeatFactorTrainingSampler(factors, seed=5), 60000)),
                           minlength=len(factors))
    np.testing.assert_allclose(shuffled / shuffled.sum(), factors / factors.sum(), atol=0.01)


def test_stream_is_determined_by_the_seed():
    factors = [1.0, 1.7, 3.2, 1.0, 1.1]
    take = lambda sampler: list(itertools.islice(sampler, 200))  # noqa: E731
    a = RepeatFactorTrainingSampler(factors, seed=3)
    assert take(a) == take(RepeatFactorTrainingSampler(factors, seed=3)) == take(a)  # iterating again restarts
    assert take(a) != take(RepeatFactorTrainingSampler(factors, seed=4))
    # with every factor 1 it is exactly the plain TrainingSampler's stream
    assert take(RepeatFactorTrainingSampler([1.0] * 7, shuffle=False)) == take(TrainingSampler(7, shuffle=False))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_take_disjoint_positions_of_one_stream(world_size):
    factors = [1.0, 2.4, 1.3, 1.0, 4.5, 1.0, 1.9]
    n = 300
    shards = [list(itertools.islice(RepeatFactorTrainingSampler(factors, seed=9, rank=r, world_size=world_size), n))
              for r in range(world_size)]
    whole = list(itertools.islice(RepeatFactorTrainingSampler(factors, seed=9), n * world_size))
    # rank r gets positions r, r + world_size, ... of the global stream: no position is read twice or skipped
    for r, shard in enumerate(shards):
        assert shard == whole[r::world_size]
    merged = [i for group in zip(*shards) for i in group]
    assert merged == whole


def test_train_loader_uses_repeat_factors_when_given_a_threshold():
    sets = [[0]] * 9 + [[1]] + [[]]  # the image without annotations is filtered before counting
    mapper = DatasetMapper(is_train=True, augmentations=[])
    loader = build_train_loader(dataset=_records(sets), mapper=mapper, total_batch_size=2, repeat_threshold=0.5)
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, RepeatFactorTrainingSampler)
    np.testing.assert_allclose(sampler.repeat_factors, [1.0] * 9 + [math.sqrt(0.5 * 10)])
    plain = build_train_loader(dataset=_records(sets), mapper=mapper, total_batch_size=2)
    assert type(plain.batch_sampler.sampler) is TrainingSampler
