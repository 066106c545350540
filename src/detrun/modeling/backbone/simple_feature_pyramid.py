"""ViTDet's `SimpleFeaturePyramid`: p2-p6 from the single stride-16 map of a plain ViT
(`detrun.modeling.backbone.vit`), by deconvolution, identity and pooling."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..shape_spec import ShapeSpec
from .backbone import Backbone
from .norm import Conv2dNorm, get_norm


# scale factor -> the layers before the 1x1 / 3x3 output convs, given the ViT width d
def _rescale_layers(scale: float, dim: int, norm: str) -> tuple[list[nn.Module], int]:
    if scale == 4.0:
        return [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2), get_norm(norm, dim // 2) or nn.Identity(),
                nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2)], dim // 4
    if scale == 2.0:
        return [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)], dim // 2
    if scale == 1.0:
        return [], dim
    if scale == 0.5:
        return [nn.MaxPool2d(kernel_size=2, stride=2)], dim
    raise ValueError(f"SimpleFeaturePyramid scale_factors may be 4.0, 2.0, 1.0 and 0.5; got {scale}")


class SimpleFeaturePyramid(Backbone):
    """ViTDet's pyramid from one feature map: "p{k}" for each scale factor (4x deconv, 2x deconv,
    identity, 2x max pool), each followed by a 1x1 and a 3x3 conv with `norm`, plus a top block's
    levels (LastLevelMaxPool: p6), like the FPN's outputs.

    Args:
        net: the single-scale backbone (`ViT`).
        in_feature: its output to use (``"last_feat"``); None: its only output.
        out_channels: channels of every level (256).
        scale_factors: resolution of each level relative to `in_feature`, finest first (4, 2, 1, 0.5
            give p2-p5 from a stride-16 ViT).
        top_block: module adding coarser levels (`LastLevelMaxPool`); its `in_feature` None reads
            the coarsest pyramid level.
        norm: norm of the output convs (and inside the 4x branch), "LN" in ViTDet.
        square_pad: > 0 pads every input to square_pad x square_pad (ViTDet: 1024); 0 pads to a
            multiple of the coarsest stride only.
    """

    def __init__(self, *, net: Backbone, in_feature: str | None = None, out_channels: int,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), top_block: nn.Module | None = None,
                 norm: str = "LN", square_pad: int = 0):
        super().__init__()
        shapes = net.output_shape()
        if in_feature is None:
            if len(shapes) != 1:
                raise ValueError(f"SimpleFeaturePyramid: net has several outputs {list(shapes)}; "
                                 "choose one as in_feature")
            in_feature = next(iter(shapes))
        if in_feature not in shapes:
            raise ValueError(f"SimpleFeaturePyramid in_feature '{in_feature}' is not an output of net "
                             f"(it has {list(shapes)})")
        source = shapes[in_feature]
        strides = [int(source.stride / s) for s in scale_factors]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"SimpleFeaturePyramid scale_factors {list(scale_factors)} must halve level to level "
                             f"(finest first), giving strides {strides}")
        self.net = net
        self.in_feature = in_feature
        self.top_block = top_block
        self.stages = []
        self._shapes = {}
        for scale, stride in zip(scale_factors, strides):
            layers, dim = _rescale_layers(float(scale), source.channels, norm)
            layers += [Conv2dNorm(dim, out_channels, 1, norm=norm),
                       Conv2dNorm(out_channels, out_channels, 3, padding=1, norm=norm)]
            level = int(math.log2(stride))
            stage = nn.Sequential(*layers)
            self.add_module(f"simfp_{level}", stage)
            self.stages.append(stage)
            self._shapes[f"p{level}"] = ShapeSpec(channels=out_channels, stride=stride)
        self._last = f"p{int(math.log2(strides[-1]))}"
        if top_block is not None:
            src = top_block.in_feature or self._last
            if src not in self._shapes and src not in shapes:
                raise ValueError(f"SimpleFeaturePyramid top block reads '{src}', which is neither a pyramid level "
                                 f"({list(self._shapes)}) nor an output of net ({list(shapes)})")
            last = int(math.log2(strides[-1]))
            for k in range(last + 1, last + 1 + top_block.num_levels):
                self._shapes[f"p{k}"] = ShapeSpec(channels=out_channels, stride=2 ** k)
        self._size_divisibility = strides[-1]
        self.square_pad = square_pad

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": self.square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W], H and W multiples of `size_divisibility`
        -> {"p{k}": Tensor[N, out_channels, H / 2**k, W / 2**k]}."""
        bottom_up = self.net(x)
        feature = bottom_up[self.in_feature]
        results = {name: stage(feature) for name, stage in zip(self._shapes, self.stages)}
        if self.top_block is not None:
            src = self.top_block.in_feature or self._last
            top_input = results[src] if src in results else bottom_up[src]
            last = int(self._last[1:])
            for k, level in enumerate(self.top_block(top_input), start=last + 1):
                results[f"p{k}"] = level
        return results

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(self._shapes)
