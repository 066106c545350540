"""The RPN head: a shared 3x3 conv, then per-anchor objectness and box deltas."""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class StandardRPNHead(nn.Module):
    """Conv 3x3 + ReLU (shared across levels), then 1x1 convs for objectness and deltas.

    Parameter names follow Detectron2 (`conv`, `objectness_logits`, `anchor_deltas`), so its
    checkpoints load as they are. Initialization: normal(std=0.01), zero bias (both libraries).

    Args:
        in_channels: channels of every input level (an FPN has one width for all levels).
        num_anchors: anchors per cell (same on every level), e.g. 3 for 1 size x 3 ratios.
        box_dim: numbers per box delta (4).
        conv_dims: widths of the shared convs; -1 means "same as in_channels". Default one conv.
            Several convs are named `conv.conv0`, `conv.conv1`, ...
    """

    def __init__(self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: list[int] = (-1,)):
        super().__init__()
        if len(conv_dims) == 0:
            raise ValueError("StandardRPNHead needs at least one conv (conv_dims=[-1] for the default)")
        self.num_anchors = num_anchors
        self.box_dim = box_dim
        convs = []
        channels = in_channels
        for dim in conv_dims:
            out = channels if dim == -1 else dim
            convs.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
            channels = out
        if len(convs) == 1:
            self.conv = convs[0]
        else:
            self.conv = nn.Sequential()
            for i, conv in enumerate(convs):
                self.conv.add_module(f"conv{i}", conv)
                self.conv.add_module(f"relu{i}", nn.ReLU(inplace=True))
        self.objectness_logits = nn.Conv2d(channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * box_dim, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.constant_(module.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness logits Tensor[N, A, H, W] and deltas Tensor[N, A*box_dim, H, W]."""
        logits, deltas = [], []
        single_conv = isinstance(self.conv, nn.Conv2d)
        for x in features:
            t = F.relu(self.conv(x), inplace=True) if single_conv else self.conv(x)
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas
