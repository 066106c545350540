import math

import torch
from torch import nn

from detrun.engine.ema import ModelEMA


def test_ema_follows_the_formula_for_parameters_and_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9, warmup_iters=10)
    expected = {k: v.clone().float() for k, v in model.state_dict().items()}
    for step in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 3))  # moves the running stats and num_batches_tracked
        ema.update(model)
        d = 0.9 * (1 - math.exp(-step / 10))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v.float() if v.is_floating_point() else v.float()
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.float(), expected[k])
    assert ema.module.state_dict()["1.num_batches_tracked"] == 3


def test_state_dict_round_trip():
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.5, warmup_iters=0)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model)
    other = ModelEMA(nn.Linear(2, 2), decay=0.5, warmup_iters=0)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.module.weight, ema.module.weight)
    assert not any(p.requires_grad for p in other.module.parameters())
