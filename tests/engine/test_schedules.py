import math

import pytest

from detrun.config import get_recipe, instantiate
from detrun.engine.schedules import ScheduleError, WarmupCosineLR, WarmupMultiStepLR


def test_multistep_values_match_hand_computed_steps():
    s = WarmupMultiStepLR(max_iter=100, milestones=[0.5, 0.8], gamma=0.1, warmup_length=0.1, warmup_factor=0.01)
    # Linear warmup from 0.01 to 1 over iterations 0..10.
    assert s(0) == pytest.approx(0.01)
    assert s(5) == pytest.approx(0.01 * 0.5 + 0.5)
    assert s(10) == 1.0 and s(49) == 1.0
    assert s(50) == pytest.approx(0.1) and s(79) == pytest.approx(0.1)
    assert s(80) == pytest.approx(0.01) and s(99) == pytest.approx(0.01)


def test_cosine_goes_from_one_to_end_value_through_the_midpoint():
    s = WarmupCosineLR(max_iter=200, end_value=0.1)
    assert s(0) == 1.0
    assert s(100) == pytest.approx(0.55)
    assert s(200) == pytest.approx(0.1)
    values = [s(i) for i in range(201)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_warmup_multiplies_the_schedule_value():
    s = WarmupCosineLR(max_iter=100, warmup_length=0.5, warmup_factor=0.0)
    assert s(25) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.25)))


@pytest.mark.parametrize("kwargs, needle", [
    ({"milestones": [60000, 80000]}, "fractions of max_iter"),
    ({"milestones": [0.8, 0.5]}, "increasing"),
    ({"warmup_length": 1000}, "warmup_length is a fraction"),
    ({"max_iter": 0}, "must be positive"),
])
def test_bad_arguments_say_what_to_write(kwargs, needle):
    with pytest.raises(ScheduleError, match=needle):
        WarmupMultiStepLR(**{"max_iter": 90000, **kwargs})


def test_recipe_nodes_follow_trainer_max_iter():
    from detrun.recipes.common import schedules
    from detrun.recipes.common.trainer import trainer
    from omegaconf import OmegaConf

    for node in (schedules.multistep, schedules.cosine):
        cfg = OmegaConf.create({"trainer": trainer, "lr_scheduler": node})
        cfg.trainer.max_iter = 300
        assert instantiate(cfg.lr_scheduler).max_iter == 300
