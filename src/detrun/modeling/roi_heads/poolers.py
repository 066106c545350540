"""Multi-level ROI pooling: assign each box to an FPN level by its size, then ROIAlign there."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import Boxes


class ROIPooler(nn.Module):
    """ROIAlign over a pyramid of feature maps.

    A box of size ``s = sqrt(area)`` goes to level
    ``floor(canonical_level + log2(s / canonical_box_size) + level_eps)``, clamped to the
    available levels (FPN paper eq. 1; 224 -> level 4).

    Args:
        output_size: pooled (height, width), or one int for both (7 for box heads, 14 for masks).
        scales: per input level, feature pixels per input pixel (1/stride), e.g. [1/4, 1/8, 1/16, 1/32].
            Each must be a power of two.
        sampling_ratio: ROIAlign sampling points per bin side; 0 = adaptive
            (Detectron2: 0; torchvision: 2).
        aligned: shift box coordinates by -0.5 pixel before sampling (Detectron2's ROIAlignV2: True;
            torchvision: False).
        canonical_box_size: box size (pixels) mapped to `canonical_level` (224, the ImageNet size).
        canonical_level: level of a canonical box (4).
        level_eps: added before the floor so that a box of exactly canonical size isn't sent one
            level down by rounding (torchvision: 1e-6).
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
        raise NotImplementedError

    def forward(self, features: list[Tensor], box_lists: list[Boxes]) -> Tensor:
        """Pool each box from its level.

        Args:
            features: per level Tensor[N, C, H_l, W_l], in the order of `scales`.
            box_lists: per image, the Boxes (input pixels, XYXY) to pool.

        Returns:
            Tensor[sum of boxes, C, output_h, output_w], boxes in image order.
        """
        raise NotImplementedError
