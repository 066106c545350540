"""Optimizer parameter groups: which parameters get weight decay.

Decaying a normalisation layer's scale and shift, or any bias, pulls them toward zero
without regularising the function in a useful way, so by default they get none (as in
Detectron2's ``get_default_optimizer_params`` and "Bag of Tricks", He et al. 2019, §3.1).
"""
from __future__ import annotations

from torch import nn

# Module types whose parameters are normalisation scale/shift. Names ending in "Norm" or
# "Norm2d" catch the model code's own layers (FrozenBatchNorm2d, channels-first LayerNorm).
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
              nn.modules.instancenorm._InstanceNorm)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES) or type(module).__name__.endswith(("Norm", "Norm2d", "Norm1d"))


def param_groups(model: nn.Module, *, weight_decay_norm: float | None = 0.0,
                 weight_decay_bias: float | None = 0.0) -> list[dict]:
    """Split the trainable parameters of `model` into optimizer groups by weight decay.

    Args:
        model: the model; parameters with ``requires_grad=False`` are left out, and a
            parameter shared by several modules is listed once.
        weight_decay_norm: weight decay of normalisation-layer parameters; None uses the
            optimizer's own ``weight_decay``.
        weight_decay_bias: weight decay of the other biases; None uses the optimizer's.

    Returns:
        ``[{"params": [...]}, {"params": [...], "weight_decay": x}, ...]`` for
        ``torch.optim.X(param_groups, ...)``: one group per distinct weight decay, empty groups
        dropped, parameters in ``model.named_parameters()`` order within each group.
    """
    groups: dict[float | None, list] = {}
    seen = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if is_norm(module):
                decay = weight_decay_norm
            elif name == "bias":
                decay = weight_decay_bias
            else:
                decay = None
            groups.setdefault(decay, []).append(param)
    return [{"params": params} if decay is None else {"params": params, "weight_decay": decay}
            for decay, params in groups.items()]
