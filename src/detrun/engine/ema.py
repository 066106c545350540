"""Exponential moving average of a model's weights, evaluated in place of the raw weights."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Keep ``ema = d * ema + (1 - d) * weights`` after every optimizer step.

    Args:
        model: the (unwrapped, not DDP) model being trained; copied once here.
        decay: the long-run decay d; 0.9998 averages over roughly the last 5000 steps.
        warmup_iters: ramps the decay as ``decay * (1 - exp(-updates / warmup_iters))`` so the
            average forgets the random initialisation quickly (as YOLOX/YOLOv5 do); 0 disables.

    Floating-point parameters and buffers (e.g. BatchNorm running stats) are averaged; integer
    buffers (``num_batches_tracked``) are copied. `module` is the averaged model, in eval mode.
    """

    def __init__(self, model: nn.Module, *, decay: float, warmup_iters: int = 2000):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"trainer.ema.decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup_iters = warmup_iters
        self.updates = 0

    def current_decay(self) -> float:
        if self.warmup_iters <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.warmup_iters))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of `model` (same architecture) into the average."""
        self.updates += 1
        d = self.current_decay()
        for avg, new in zip(self.module.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(new.detach().to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
