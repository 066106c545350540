"""The RPN head: a shared 3x3 conv, then per-anchor objectness and box deltas."""
from __future__ import annotations

from torch import Tensor, nn


class StandardRPNHead(nn.Module):
    """Conv 3x3 + ReLU (shared across levels), then 1x1 convs for objectness and deltas.

    Args:
        in_channels: channels of every input level (an FPN has one width for all levels).
        num_anchors: anchors per cell (same on every level), e.g. 3 for 1 size x 3 ratios.
        box_dim: numbers per box delta (4).
        conv_dims: widths of the shared convs; -1 means "same as in_channels". Default one conv.
    """

    def __init__(self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: list[int] = (-1,)):
        super().__init__()
        raise NotImplementedError

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness logits Tensor[N, A, H, W] and deltas Tensor[N, A*box_dim, H, W]."""
        raise NotImplementedError
