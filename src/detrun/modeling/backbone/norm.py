"""Normalisation layers by name: the one factory every part uses for its `norm` argument.

Names (Detectron2's spellings): ``""`` (none), ``"FrozenBN"``, ``"BN"``, ``"SyncBN"``, ``"GN"``,
``"LN"`` (LayerNorm over the channels of a Tensor[N, C, H, W], ViTDet's heads and pyramid).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("", "FrozenBN", "BN", "SyncBN", "GN", "LN")
# Group count of GroupNorm (Wu & He, 2018: 32 groups is best on ImageNet/COCO); layers whose
# channel count 32 doesn't divide use the largest divisor of it that does.
GN_GROUPS = 32


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters: y = (x - mean) / sqrt(var + eps) * w + b.

    All four tensors are buffers (no gradients, not touched by optimizers or weight decay).
    Used for backbones fine-tuned with small per-GPU batches, where batch statistics are noise.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), Tensor[C] each, such that the layer computes x * scale + shift per channel."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, C, H, W] -> same shape and dtype."""
        scale, shift = self.scale_and_shift()
        return torch.addcmul(shift.to(x.dtype).view(1, -1, 1, 1), x, scale.to(x.dtype).view(1, -1, 1, 1))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A BatchNorm2d checkpoint carries a step counter that frozen statistics don't need.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Return `module` with every BatchNorm2d/SyncBatchNorm inside replaced by a frozen copy
        (statistics and affine parameters kept). `module` itself is replaced if it is one."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = cls(module.num_features, eps=module.eps)
            with torch.no_grad():
                if module.affine:
                    frozen.weight.copy_(module.weight)
                    frozen.bias.copy_(module.bias)
                if module.track_running_stats:
                    frozen.running_mean.copy_(module.running_mean)
                    frozen.running_var.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of Tensor[N, C, H, W], each pixel normalised on its own
    (the "channels-first" LayerNorm of ConvNeXt and ViTDet; Detectron2's ``layers.LayerNorm``).

    eps 1e-6 as in Detectron2 and ConvNeXt; parameters ``weight`` and ``bias``, Tensor[C] each,
    so Detectron2's ViTDet checkpoints load as they are.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, C, H, W] -> same shape and dtype."""
        # F.layer_norm on a channels-last view: one fused kernel instead of mean/var/sqrt by hand.
        return F.layer_norm(x.permute(0, 2, 3, 1), (self.num_channels,), self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}"


def get_norm(norm: str, channels: int) -> nn.Module | None:
    """Build the normalisation layer called `norm` for `channels` channels (None for ``""``).

    ``"BN"`` is nn.BatchNorm2d, ``"SyncBN"`` nn.SyncBatchNorm (statistics over all processes;
    plain BN when not distributed), ``"FrozenBN"`` FrozenBatchNorm2d, ``"GN"`` GroupNorm with
    32 groups (fewer when 32 doesn't divide `channels`), ``"LN"`` LayerNorm2d (over channels).
    """
    if norm == "":
        return None
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if norm == "GN":
        return nn.GroupNorm(math.gcd(GN_GROUPS, channels), channels)
    if norm == "LN":
        return LayerNorm2d(channels)
    raise ValueError(f"unknown norm '{norm}'; choose one of {', '.join(repr(n) for n in NORMS)}")


class Conv2dNorm(nn.Conv2d):
    """nn.Conv2d followed by an optional norm layer stored as its `norm` child.

    Keeping the norm inside the conv gives Detectron2's parameter names (``conv1.weight``,
    ``conv1.norm.weight``), so its checkpoints load without renaming. The conv has a bias only
    when there is no norm (a norm's shift makes it redundant), unless `bias` says otherwise.
    A FrozenBatchNorm2d is folded into the conv's weight and bias at each call: one pass over
    the output instead of two (~14% of R50-FPN Mask R-CNN inference on CPU, benchmarks/model.py).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool | None = None,
                 norm: str = ""):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=(norm == "") if bias is None else bias)
        self.norm = get_norm(norm, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, Cin, H, W] -> Tensor[N, Cout, H', W']."""
        if isinstance(self.norm, FrozenBatchNorm2d):
            scale, shift = self.norm.scale_and_shift()
            weight = self.weight * scale.view(-1, 1, 1, 1)
            bias = shift if self.bias is None else shift + self.bias * scale
            return self._conv_forward(x, weight.to(x.dtype), bias.to(x.dtype))
        x = super().forward(x)
        return x if self.norm is None else self.norm(x)
