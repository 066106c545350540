"""Box head: convs and fully-connected layers on pooled box features."""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from ..backbone.norm import Conv2dNorm


class FastRCNNConvFCHead(nn.Module):
    """Conv 3x3 (+ norm) + ReLU layers, then flatten and FC + ReLU layers (Detectron2's default: 2 x FC 1024).

    Parameter names follow Detectron2 (`conv1..`, `fc1..`); flattening is (C, H, W) row-major as
    in Detectron2 and torchvision, so FC weights of either load unchanged.

    Args:
        in_channels: channels of the pooled features (the FPN width).
        input_size: pooled (height, width) or one int (the box pooler's `output_size`).
        conv_dims: widths of the conv layers (none by default).
        fc_dims: widths of the FC layers.
        conv_norm: norm after each conv ("", "BN", "SyncBN", "FrozenBN", "GN").

    `output_size` (int) is the size of the per-box feature vector the predictor receives
    (C' * h * w when there are no FC layers: the predictor flattens).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_size: int | tuple[int, int],
        conv_dims: list[int] = (),
        fc_dims: list[int] = (1024, 1024),
        conv_norm: str = "",
    ):
        super().__init__()
        if len(conv_dims) + len(fc_dims) == 0:
            raise ValueError("FastRCNNConvFCHead needs at least one conv or FC layer")
        height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
        channels = in_channels
        self.convs = []
        for k, dim in enumerate(conv_dims, start=1):
            conv = Conv2dNorm(channels, dim, kernel_size=3, padding=1, norm=conv_norm)
            # Kaiming (fan_out) init of the convs, as Detectron2's c2_msra_fill.
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.add_module(f"conv{k}", conv)
            self.convs.append(conv)
            channels = dim
        features = channels * height * width
        self.fcs = []
        for k, dim in enumerate(fc_dims, start=1):
            fc = nn.Linear(features, dim)
            # Caffe2's "XavierFill" (uniform, fan_in), Detectron2's c2_xavier_fill.
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
            self.add_module(f"fc{k}", fc)
            self.fcs.append(fc)
            features = dim
        self.output_size = features

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[R, C, h, w] -> Tensor[R, output_size] (or [R, C', h, w] without FC layers)."""
        # In-place ReLUs: conv / linear backward needs their inputs, not their outputs.
        for conv in self.convs:
            x = F.relu(conv(x), inplace=True)
        if self.fcs:
            x = x.flatten(1)
            for fc in self.fcs:
                x = F.relu(fc(x), inplace=True)
        return x
