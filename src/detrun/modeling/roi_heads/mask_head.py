"""Mask head: FCN on pooled mask features, its loss and inference."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import Instances


class MaskRCNNConvUpsampleHead(nn.Module):
    """Conv 3x3 + ReLU layers, a 2x transposed conv + ReLU, then 1x1 conv to per-class mask logits.

    Args:
        in_channels: channels of the pooled features (the FPN width).
        num_classes: number of foreground classes C (one mask channel each).
        conv_dims: widths of the conv layers followed by the width of the transposed conv
            (Detectron2: ``[256] * 5`` = 4 convs + deconv).
        cls_agnostic_mask: predict one mask for all classes.
        loss_weight: multiplier of `loss_mask`.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        conv_dims: list[int],
        cls_agnostic_mask: bool = False,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: Tensor, instances: list[Instances]) -> dict[str, Tensor] | list[Instances]:
        """Training: {"loss_mask": ...} for proposals with gt; inference: sets `pred_masks` on `instances`."""
        raise NotImplementedError
