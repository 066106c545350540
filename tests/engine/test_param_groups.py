import pytest
import torch
from torch import nn

from detrun.config import instantiate
from detrun.engine.optim import param_groups


class FrozenBatchNorm2d(nn.Module):  # a model-code norm with parameters, recognised by its name
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))


def _model():
    shared = nn.Linear(4, 4)
    return nn.ModuleDict({
        "conv": nn.Conv2d(3, 4, 3), "bn": nn.BatchNorm2d(4), "gn": nn.GroupNorm(2, 4), "ln": nn.LayerNorm(4),
        "custom": FrozenBatchNorm2d(4), "a": shared, "b": shared,
        "frozen": nn.Linear(4, 4).requires_grad_(False),
    })


def _decay_of(groups, default=1e-4):
    return {id(p): g.get("weight_decay", default) for g in groups for p in g["params"]}


def test_norms_and_biases_get_no_weight_decay_by_default():
    model = _model()
    decay = _decay_of(param_groups(model))
    expected = {id(model["conv"].weight): 1e-4, id(model["a"].weight): 1e-4,
                id(model["conv"].bias): 0.0, id(model["a"].bias): 0.0}
    for name in ("bn", "gn", "ln", "custom"):
        expected |= {id(model[name].weight): 0.0, id(model[name].bias): 0.0}
    assert decay == expected  # shared parameter once, frozen ones left out


def test_none_means_the_optimizers_own_weight_decay_and_groups_merge():
    model = _model()
    groups = param_groups(model, weight_decay_norm=None, weight_decay_bias=None)
    assert len(groups) == 1 and "weight_decay" not in groups[0]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in model.parameters() if p.requires_grad]
    groups = param_groups(model, weight_decay_norm=0.5, weight_decay_bias=None)
    assert sorted(set(_decay_of(groups).values())) == [1e-4, 0.5]


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_recipe_optimizers_take_the_groups(name):
    from detrun.recipes.common import optim

    opt = instantiate(getattr(optim, name), params=param_groups(_model()))
    assert {g["weight_decay"] for g in opt.param_groups} == {getattr(optim, name).weight_decay, 0.0}
