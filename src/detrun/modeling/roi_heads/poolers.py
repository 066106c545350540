"""Multi-level ROI pooling: assign each box to an FPN level by its size, then ROIAlign there."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from detrun.ops import roi_align
from detrun.structures import Boxes


def assign_boxes_to_levels(
    boxes: Tensor, min_level: int, max_level: int, canonical_box_size: float, canonical_level: int, level_eps: float
) -> Tensor:
    """FPN level index (0 = `min_level`) of each box: int64 Tensor[K].

    ``floor(canonical_level + log2(sqrt(area) / canonical_box_size) + level_eps)``, clamped to
    [min_level, max_level] (FPN paper eq. 1), with torchvision's order of float operations.
    """
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size) + level_eps)
    return (levels.clamp(min=min_level, max=max_level) - min_level).to(torch.int64)


class ROIPooler(nn.Module):
    """ROIAlign over a pyramid of feature maps.

    A box of size ``s = sqrt(area)`` goes to level
    ``floor(canonical_level + log2(s / canonical_box_size) + level_eps)``, clamped to the
    available levels (FPN paper eq. 1; 224 -> level 4).

    Args:
        output_size: pooled (height, width), or one int for both (7 for box heads, 14 for masks).
        scales: per input level, feature pixels per input pixel (1/stride), e.g. [1/4, 1/8, 1/16, 1/32].
            Each must be a power of two; consecutive levels must differ by a factor 2.
        sampling_ratio: ROIAlign sampling points per bin side; 0 = adaptive
            (Detectron2: 0; torchvision: 2).
        aligned: shift box coordinates by -0.5 pixel before sampling (Detectron2's ROIAlignV2: True;
            torchvision: False).
        canonical_box_size: box size (pixels) mapped to `canonical_level` (224, the ImageNet size).
        canonical_level: level of a canonical box (4).
        level_eps: added before the floor so that a box of exactly canonical size isn't sent one
            level down by rounding (torchvision: 1e-6; Detectron2 adds 1e-8 inside the log, which
            differs only for boxes within ~1e-6 of a level boundary).
    """

    def __init__(
        self,
        *,
        output_size: int | tuple[int, int],
        scales: list[float],
        sampling_ratio: int,
        aligned: bool = True,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
        level_eps: float = 1e-6,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)
        self.scales = [float(s) for s in scales]
        levels = [-math.log2(s) for s in self.scales]
        if any(abs(lv - round(lv)) > 1e-6 for lv in levels) or [round(lv) for lv in levels] != list(
            range(round(levels[0]), round(levels[0]) + len(levels))
        ):
            raise ValueError(
                f"ROIPooler scales must be consecutive powers of 1/2 (e.g. [0.25, 0.125, ...]), got {list(scales)}"
            )
        self.min_level = round(levels[0])
        self.max_level = round(levels[-1])
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = aligned
        self.canonical_box_size = float(canonical_box_size)
        self.canonical_level = int(canonical_level)
        self.level_eps = float(level_eps)

    def forward(self, features: list[Tensor], box_lists: list[Boxes] | list[Tensor]) -> Tensor:
        """Pool each box from its level.

        Args:
            features: per level Tensor[N, C, H_l, W_l], in the order of `scales`.
            box_lists: per image, the Boxes or Tensor[K_i, 4] (input pixels, XYXY) to pool.

        Returns:
            Tensor[sum of boxes, C, output_h, output_w] in the features' dtype, boxes in image order.
        """
        if len(features) != len(self.scales):
            raise ValueError(f"ROIPooler was built for {len(self.scales)} levels, got {len(features)} feature maps")
        if not box_lists:  # a batch without images (Detectron2 allows it): nothing to pool
            return features[0].new_zeros((0, features[0].shape[1]) + self.output_size)
        box_lists = [b.tensor if isinstance(b, Boxes) else b for b in box_lists]
        boxes = torch.cat(box_lists).float()
        # (No Python list of box counts: under torch.export they are symbolic.)
        image_idx = torch.cat([torch.full((b.shape[0], 1), i, device=boxes.device, dtype=boxes.dtype)
                               for i, b in enumerate(box_lists)])
        rois = torch.cat([image_idx, boxes], dim=1)  # [K, 5] (batch_idx, x1, y1, x2, y2)
        if len(features) == 1:
            return self._roi_align(features[0], rois, self.scales[0])

        levels = assign_boxes_to_levels(
            boxes, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level, self.level_eps
        )
        x0 = features[0]
        # Every box gets exactly one level (levels are clamped), so every row is written below.
        output = x0.new_empty((rois.shape[0], x0.shape[1]) + self.output_size)
        for level, (x, scale) in enumerate(zip(features, self.scales)):
            idx = torch.nonzero(levels == level).squeeze(1)
            output[idx] = self._roi_align(x, rois[idx], scale).to(output.dtype)
        return output

    def _roi_align(self, x: Tensor, rois: Tensor, scale: float) -> Tensor:
        return roi_align(
            x, rois, self.output_size, spatial_scale=scale, sampling_ratio=self.sampling_ratio, aligned=self.aligned
        )
