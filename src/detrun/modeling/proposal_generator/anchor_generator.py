"""Anchors: a fixed set of boxes centred on every feature-map cell of every level."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from detrun.structures import Boxes


def _cell_anchors(sizes: list[float], aspect_ratios: list[float], round_anchors: bool, ratio_major: bool) -> Tensor:
    """Anchors centred at (0, 0), Tensor[len(sizes) * len(aspect_ratios), 4], size-major order
    (or ratio-major).

    A size s and ratio r = h / w give w = s / sqrt(r), h = s * sqrt(r) (area s^2).
    """
    pairs = [(s, r) for s in sizes for r in aspect_ratios]
    if ratio_major:
        pairs = [(s, r) for r in aspect_ratios for s in sizes]
    anchors = []
    for size, ratio in pairs:
        w = size / math.sqrt(ratio)
        h = size * math.sqrt(ratio)
        anchors.append([-w / 2, -h / 2, w / 2, h / 2])
    cell = torch.tensor(anchors, dtype=torch.float64)
    # torchvision rounds its cell anchors to whole pixels; weights trained with it expect that.
    return (cell.round() if round_anchors else cell).float()


class DefaultAnchorGenerator(nn.Module):
    """Anchors of the given sizes and aspect ratios, one grid per feature level.

    Args:
        sizes: per level, anchor sizes in input pixels (sqrt of the anchor area), e.g.
            ``[[32], [64], [128], [256], [512]]`` for an FPN. A single inner list is used for
            every level.
        aspect_ratios: per level, height / width ratios; a single inner list is used for every
            level (``[[0.5, 1.0, 2.0]]``).
        strides: per level, the feature stride in input pixels, e.g. ``[4, 8, 16, 32, 64]``.
            ``None`` infers each level's stride at every call as
            ``padded_image_size // feature_size`` (per axis), which is torchvision's rule (it
            gives e.g. stride 61 for a 13-cell level of an 800-pixel image).
        offset: anchor centres are at ``(i + offset) * stride``; 0.0 in Detectron2 and torchvision.
        round_anchors: round the cell anchors (centred at 0) to integer coordinates, as
            torchvision does; Detectron2 keeps them unrounded.
        ratio_major: order a cell's anchors ratio by ratio, then size (torchvision), instead of
            size by size, then ratio (Detectron2). Matters with several sizes per level (RetinaNet):
            a head's output channels follow this order.

    Anchors are ordered cell-major, then within a cell as above; with one size per level both
    libraries' orders agree.
    """

    def __init__(
        self,
        *,
        sizes: list[list[float]],
        aspect_ratios: list[list[float]],
        strides: list[int] | None,
        offset: float = 0.0,
        round_anchors: bool = False,
        ratio_major: bool = False,
    ):
        super().__init__()
        num_levels = len(strides) if strides is not None else max(len(sizes), len(aspect_ratios))
        sizes = _broadcast_levels(sizes, num_levels, "sizes")
        aspect_ratios = _broadcast_levels(aspect_ratios, num_levels, "aspect_ratios")
        self.strides = list(strides) if strides is not None else None
        self.offset = float(offset)
        self.round_anchors = round_anchors
        self.ratio_major = ratio_major
        cells = [_cell_anchors(s, r, round_anchors, ratio_major) for s, r in zip(sizes, aspect_ratios)]
        # Not persistent: anchors are derived from the arguments, never loaded from a checkpoint.
        for i, cell in enumerate(cells):
            self.register_buffer(f"cell_anchors_{i}", cell, persistent=False)
        self.num_levels = num_levels

    @property
    def num_anchors(self) -> list[int]:
        """Number of anchors per cell, per level."""
        return [len(self.get_buffer(f"cell_anchors_{i}")) for i in range(self.num_levels)]

    def forward(self, features: list[Tensor], image_size: tuple[int, int] | None = None) -> list[Boxes]:
        """Anchors for each level: Boxes of (H_l * W_l * A_l) anchors, cell-major then anchor.

        Args:
            features: one Tensor[N, C, H_l, W_l] per level (only the shape and device are read).
            image_size: padded input (H, W), needed only when `strides` is None.

        Returns:
            One float32 Boxes per level, shared by all images of the batch.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"DefaultAnchorGenerator was built for {self.num_levels} levels, got {len(features)} feature maps")
        anchors = []
        for level, feature in enumerate(features):
            grid_h, grid_w = feature.shape[-2:]
            if self.strides is not None:
                stride_h = stride_w = self.strides[level]
            elif image_size is None:
                raise ValueError("DefaultAnchorGenerator(strides=None) needs the padded image_size to infer strides")
            else:
                stride_h, stride_w = image_size[0] // grid_h, image_size[1] // grid_w
            cell = self.get_buffer(f"cell_anchors_{level}")
            device = cell.device
            shift_x = (torch.arange(grid_w, device=device, dtype=torch.float32) + self.offset) * stride_w
            shift_y = (torch.arange(grid_h, device=device, dtype=torch.float32) + self.offset) * stride_h
            shift_y, shift_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)
            anchors.append(Boxes((shifts + cell.view(1, -1, 4)).reshape(-1, 4)))
        return anchors


def check_head_anchors(owner: str, head: nn.Module, anchor_generator: DefaultAnchorGenerator) -> None:
    """Raise ValueError naming `owner` when the head's ``num_anchors`` (if it has one) differs from
    the anchors per cell the generator makes on some level."""
    head_anchors = getattr(head, "num_anchors", None)
    if head_anchors is not None and any(n != head_anchors for n in anchor_generator.num_anchors):
        raise ValueError(f"{owner}: the head predicts {head_anchors} anchors per cell but the anchor generator makes "
                         f"{anchor_generator.num_anchors} per level; set head.num_anchors to "
                         "len(sizes per level) * len(aspect_ratios per level)")


def _broadcast_levels(values: list[list[float]], num_levels: int, name: str) -> list[list[float]]:
    """Repeat a single per-level list for every level; check the level count otherwise."""
    values = [list(v) for v in values]
    if len(values) == 1:
        return values * num_levels
    if len(values) != num_levels:
        raise ValueError(f"DefaultAnchorGenerator: {name} has {len(values)} levels, expected 1 or {num_levels}")
    return values
