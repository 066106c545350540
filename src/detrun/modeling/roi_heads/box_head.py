"""Box head: convs and fully-connected layers on pooled box features."""
from __future__ import annotations

from torch import Tensor, nn


class FastRCNNConvFCHead(nn.Module):
    """Conv 3x3 + ReLU layers, then flatten and FC + ReLU layers (Detectron2's default 2 x FC 1024).

    Args:
        in_channels: channels of the pooled features (the FPN width).
        input_size: pooled (height, width) or one int (the box pooler's `output_size`).
        conv_dims: widths of the conv layers (none by default).
        fc_dims: widths of the FC layers.

    `output_size` (int) is the feature size the predictor receives.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_size: int | tuple[int, int],
        conv_dims: list[int] = (),
        fc_dims: list[int] = (1024, 1024),
    ):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[R, C, h, w] -> Tensor[R, output_size] (or [R, C', h, w] without FC layers)."""
        raise NotImplementedError
