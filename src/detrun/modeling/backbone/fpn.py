"""Feature Pyramid Network (Lin et al., 2017) on top of any `Backbone`, with optional extra top levels.

Parameter names follow Detectron2: ``fpn_lateral{k}``, ``fpn_output{k}`` for the level of
stride 2**k, ``bottom_up.*`` for the wrapped backbone, ``top_block.p6`` / ``top_block.p7``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..shape_spec import ShapeSpec
from .backbone import Backbone
from .norm import Conv2dNorm


def _init_fpn_conv(conv: nn.Conv2d) -> None:
    # Uniform fan-in init with a=1 ("Xavier" in Caffe2), as Detectron2 and torchvision use for FPN.
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class LastLevelMaxPool(nn.Module):
    """One more level: 1x1 max pool with stride 2 of the coarsest FPN level (P6 from P5 in
    Faster/Mask R-CNN, an extra RPN level).

    Top blocks declare `in_feature` (the FPN output or bottom-up feature they read; None for
    the FPN's coarsest output) and `num_levels` (how many levels they add after the last one).
    """

    num_levels = 1

    def __init__(self, *, in_feature: str | None = None):
        super().__init__()
        self.in_feature = in_feature

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: Tensor[N, C, H, W] -> [Tensor[N, C, ceil(H / 2), ceil(W / 2)]]."""
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """P6 = 3x3/s2 conv of `in_feature`, P7 = 3x3/s2 conv of ReLU(P6) (RetinaNet's extra levels).

    Args:
        in_channels: channels of `in_feature` (FPN checks them against what it feeds).
        out_channels: channels of P6 and P7 (the FPN's `out_channels`).
        in_feature: "res5" (bottom-up C5, RetinaNet) or "p5" (FPN output, FCOS).
    """

    num_levels = 2

    def __init__(self, *, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.in_feature = in_feature
        self.in_channels = in_channels
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        for conv in (self.p6, self.p7):
            _init_fpn_conv(conv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: Tensor[N, Cin, H, W] -> [P6 Tensor[N, C, H/2, W/2], P7 Tensor[N, C, H/4, W/4]] (rounded up)."""
        p6 = self.p6(x)
        return [p6, self.p7(F.relu(p6))]


class FPN(Backbone):
    """Top-down pathway with lateral connections; outputs "p{k}" for each input of stride 2**k.

    Args:
        bottom_up: the backbone whose features are fused (e.g. `ResNet`).
        in_features: its outputs to use, finest first (e.g. ["res2", "res3", "res4", "res5"]);
            strides must double from one to the next. None: every output in
            ``bottom_up.output_shape()``, sorted by stride.
        out_channels: channels of every pyramid level.
        norm: norm after the lateral and output convs ("" for none, as in the paper).
        top_block: optional module adding coarser levels (`LastLevelMaxPool`, `LastLevelP6P7`).
    """

    def __init__(self, *, bottom_up: Backbone, in_features: list[str] | None = None, out_channels: int,
                 norm: str = "", top_block: nn.Module | None = None):
        super().__init__()
        in_shapes = bottom_up.output_shape()
        if in_features is None:
            in_features = sorted(in_shapes, key=lambda f: in_shapes[f].stride)
        missing = [f for f in in_features if f not in in_shapes]
        if missing:
            raise ValueError(f"FPN in_features {missing} are not outputs of the bottom-up backbone "
                             f"(it has {list(in_shapes)})")
        strides = [in_shapes[f].stride for f in in_features]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"FPN in_features {list(in_features)} must have strides doubling level to level, "
                             f"got {strides} (set the FPN's in_features to a subset that does)")
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        self._levels = [int(math.log2(s)) for s in strides]
        self.lateral_convs = []
        self.output_convs = []
        for feature, level in zip(in_features, self._levels):
            lateral = Conv2dNorm(in_shapes[feature].channels, out_channels, 1, norm=norm)
            output = Conv2dNorm(out_channels, out_channels, 3, padding=1, norm=norm)
            _init_fpn_conv(lateral)
            _init_fpn_conv(output)
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)

        self._shapes = {f"p{k}": ShapeSpec(channels=out_channels, stride=2 ** k) for k in self._levels}
        if top_block is not None:
            self._check_top_block(top_block, in_shapes)
            last = self._levels[-1]
            for k in range(last + 1, last + 1 + top_block.num_levels):
                self._shapes[f"p{k}"] = ShapeSpec(channels=out_channels, stride=2 ** k)
        self._size_divisibility = strides[-1]

    def _top_block_source(self) -> str:
        return self.top_block.in_feature or f"p{self._levels[-1]}"

    def _check_top_block(self, top_block: nn.Module, in_shapes: dict[str, ShapeSpec]) -> None:
        source = self._top_block_source()
        if source not in self._shapes and source not in in_shapes:
            raise ValueError(f"FPN top block reads '{source}', which is neither an FPN output "
                             f"({list(self._shapes)}) nor a bottom-up output ({list(in_shapes)})")
        expected = getattr(top_block, "in_channels", None)
        actual = (self._shapes.get(source) or in_shapes[source]).channels
        if expected is not None and expected != actual:
            raise ValueError(f"FPN top block expects {expected} channels from '{source}', which has {actual}")

    @property
    def size_divisibility(self) -> int:
        # Each top-down step upsamples by exactly 2, so the input must divide the coarsest stride.
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W] with H, W multiples of `size_divisibility`
        -> {"p{k}": Tensor[N, out_channels, H / 2**k, W / 2**k]}."""
        bottom_up = self.bottom_up(x)
        prev = self.lateral_convs[-1](bottom_up[self.in_features[-1]])
        outputs = [self.output_convs[-1](prev)]
        for i in range(len(self.in_features) - 2, -1, -1):
            lateral = self.lateral_convs[i](bottom_up[self.in_features[i]])
            prev = lateral + F.interpolate(prev, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.output_convs[i](prev))
        names = [f"p{k}" for k in self._levels]
        results = dict(zip(names, outputs))
        if self.top_block is not None:
            source = self._top_block_source()
            top_input = results[source] if source in results else bottom_up[source]
            last = self._levels[-1]
            for k, feature in enumerate(self.top_block(top_input), start=last + 1):
                results[f"p{k}"] = feature
        return results

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(self._shapes)
