"""The contract every backbone follows, so FPNs, RPNs and ROI heads work with any of them."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from ..shape_spec import ShapeSpec


class Backbone(nn.Module, metaclass=ABCMeta):
    """A network from images to named feature maps.

    Subclasses implement `forward` and `output_shape`; parts that follow a backbone read
    channel counts and strides from `output_shape()` instead of being told them twice.
    A custom backbone only needs these two methods (and `size_divisibility` or
    `padding_constraints` if its input must be padded in a particular way).
    """

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W] normalised images -> {name: Tensor[N, channels, H / stride, W / stride]}."""

    @abstractmethod
    def output_shape(self) -> dict[str, ShapeSpec]:
        """{feature name: ShapeSpec(channels, stride)} for every output of `forward`."""

    @property
    def size_divisibility(self) -> int:
        """Input heights and widths are padded to a multiple of this (0: no constraint)."""
        return 0

    @property
    def padding_constraints(self) -> dict[str, int]:
        """How the meta-architecture pads a batch for this backbone (`ImageList.from_tensors` arguments).

        ``{"size_divisibility": d, "square_size": s}``: sides padded up to a multiple of d, or,
        when s > 0, every image padded to s x s (ViTDet's fixed square input). 0 disables either.
        By default only `size_divisibility` applies.
        """
        return {"size_divisibility": self.size_divisibility, "square_size": 0}
