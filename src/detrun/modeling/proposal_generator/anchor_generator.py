"""Anchors: a fixed set of boxes centred on every feature-map cell of every level."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.structures import Boxes


class DefaultAnchorGenerator(nn.Module):
    """Anchors of the given sizes and aspect ratios, one grid per feature level.

    Args:
        sizes: per level, anchor sizes in input pixels (sqrt of the anchor area), e.g.
            ``[[32], [64], [128], [256], [512]]`` for an FPN.
        aspect_ratios: per level, height / width ratios; a single inner list is used for every
            level (``[[0.5, 1.0, 2.0]]``).
        strides: per level, the feature stride in input pixels, e.g. ``[4, 8, 16, 32, 64]``.
            ``None`` infers each level's stride at every call as
            ``padded_image_size // feature_size`` (per axis), which is torchvision's rule (it
            gives e.g. stride 61 for a 13-cell level of an 800-pixel image).
        offset: anchor centres are at ``(i + offset) * stride``; 0.0 in Detectron2 and torchvision.
        round_anchors: round the cell anchors (centred at 0) to integer coordinates, as
            torchvision does; Detectron2 keeps them unrounded.
    """

    def __init__(
        self,
        *,
        sizes: list[list[float]],
        aspect_ratios: list[list[float]],
        strides: list[int] | None,
        offset: float = 0.0,
        round_anchors: bool = False,
    ):
        super().__init__()
        raise NotImplementedError

    @property
    def num_anchors(self) -> list[int]:
        """Number of anchors per cell, per level."""
        raise NotImplementedError

    def forward(self, features: list[Tensor], image_size: tuple[int, int] | None = None) -> list[Boxes]:
        """Anchors for each level: Boxes of (H_l * W_l * A_l) anchors, cell-major then anchor.

        Args:
            features: one Tensor[N, C, H_l, W_l] per level (only shape/device/dtype are read).
            image_size: padded input (H, W), needed only when `strides` is None.
        """
        raise NotImplementedError
