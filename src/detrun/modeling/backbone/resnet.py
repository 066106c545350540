"""ResNet (He et al., 2016) as a detection backbone: depths 18/34/50/101/152, any norm, frozen early stages.

Parameter names follow Detectron2 (``stem.conv1``, ``res2.0.conv1.norm``, ``res3.0.shortcut``),
so its checkpoints load as they are; torchvision names are converted in `detrun.checkpoint`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..shape_spec import ShapeSpec
from .backbone import Backbone
from .norm import Conv2dNorm, FrozenBatchNorm2d

# depth -> (blocks per stage res2..res5, bottleneck blocks?)
DEPTHS = {
    18: ([2, 2, 2, 2], False),
    34: ([3, 4, 6, 3], False),
    50: ([3, 4, 6, 3], True),
    101: ([3, 4, 23, 3], True),
    152: ([3, 8, 36, 3], True),
}
STAGES = ("res2", "res3", "res4", "res5")


def _init_convs(module: nn.Module) -> None:
    # He initialisation for ReLU networks (fan-out, as in both Detectron2 and torchvision).
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Module | None:
    # A projection only where the identity can't be added: channel change or downsampling.
    if in_channels == out_channels and stride == 1:
        return None
    return Conv2dNorm(in_channels, out_channels, 1, stride=stride, norm=norm)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; ResNet-18/34."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm: str = "FrozenBN"):
        super().__init__()
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2dNorm(in_channels, out_channels, 3, stride=stride, padding=1, norm=norm)
        self.conv2 = Conv2dNorm(out_channels, out_channels, 3, padding=1, norm=norm)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, Cin, H, W] -> Tensor[N, Cout, H / stride, W / stride]."""
        out = self.conv2(F.relu_(self.conv1(x)))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + identity)


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, with an identity (or 1x1 projection) shortcut; ResNet-50+.

    `stride_in_1x1=True` downsamples in the first 1x1 conv (MSRA/Caffe2 weights, Detectron2's
    default); False downsamples in the 3x3 conv (torchvision's placement, "ResNet v1.5").
    """

    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int, stride: int = 1,
                 norm: str = "FrozenBN", stride_in_1x1: bool = True):
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2dNorm(in_channels, bottleneck_channels, 1, stride=stride_1x1, norm=norm)
        self.conv2 = Conv2dNorm(bottleneck_channels, bottleneck_channels, 3, stride=stride_3x3, padding=1,
                                norm=norm)
        self.conv3 = Conv2dNorm(bottleneck_channels, out_channels, 1, norm=norm)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, Cin, H, W] -> Tensor[N, Cout, H / stride, W / stride]."""
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + identity)


class BasicStem(nn.Module):
    """7x7 stride-2 conv, norm, ReLU, 3x3 stride-2 max pool: stride 4 overall."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "FrozenBN"):
        super().__init__()
        self.conv1 = Conv2dNorm(in_channels, out_channels, 7, stride=2, padding=3, norm=norm)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Tensor[N, Cin, H, W] -> Tensor[N, Cout, ceil(H / 4), ceil(W / 4)]."""
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet(Backbone):
    """ResNet backbone returning the requested stage outputs.

    Args:
        depth: 18, 34 (basic blocks), 50, 101 or 152 (bottleneck blocks).
        out_features: which of "stem", "res2".."res5" to return; stages after the last one
            requested are not built.
        norm: "FrozenBN", "BN", "SyncBN", "GN" or "" (see `norm.get_norm`).
        freeze_at: 0 trains everything; 1 freezes the stem; k >= 2 freezes the stem and
            res2..res{k}. Frozen parts stop receiving gradients and their BatchNorms become
            FrozenBatchNorm2d (statistics fixed as loaded).
        stride_in_1x1: bottleneck downsampling in the 1x1 conv (True, Detectron2/MSRA) or the
            3x3 conv (False, torchvision).
        width: channels of the stem and of res2's 3x3 convs; each later stage doubles them
            (64 is the standard ResNet; smaller values give a narrow net for small data).
        in_channels: image channels.
    """

    def __init__(self, *, depth: int = 50, out_features: list[str] = ("res2", "res3", "res4", "res5"),
                 norm: str = "FrozenBN", freeze_at: int = 2, stride_in_1x1: bool = True, width: int = 64,
                 in_channels: int = 3):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        out_features = list(out_features)
        unknown = [f for f in out_features if f not in ("stem", *STAGES)]
        if unknown or not out_features:
            raise ValueError(f"ResNet out_features must be a non-empty subset of stem, {', '.join(STAGES)}; "
                             f"got {out_features}")
        blocks_per_stage, bottleneck = DEPTHS[depth]
        self.depth = depth
        self._out_features = out_features
        self.stem = BasicStem(in_channels, width, norm=norm)
        self._shapes = {"stem": ShapeSpec(channels=width, stride=4)}

        expansion = 4 if bottleneck else 1
        channels, stride = width, 4
        num_stages = max((STAGES.index(f) + 1 for f in out_features if f in STAGES), default=0)
        self.stage_names = list(STAGES[:num_stages])
        for i, name in enumerate(self.stage_names):
            first_stride = 1 if i == 0 else 2
            inner = width * 2 ** i
            out = inner * expansion
            blocks = []
            for b in range(blocks_per_stage[i]):
                s = first_stride if b == 0 else 1
                if bottleneck:
                    blocks.append(BottleneckBlock(channels, out, bottleneck_channels=inner, stride=s, norm=norm,
                                                  stride_in_1x1=stride_in_1x1))
                else:
                    blocks.append(BasicBlock(channels, out, stride=s, norm=norm))
                channels = out
            stride *= first_stride
            self.add_module(name, nn.Sequential(*blocks))
            self._shapes[name] = ShapeSpec(channels=out, stride=stride)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int = 0) -> ResNet:
        """Freeze the stem (freeze_at >= 1) and stages res2..res{freeze_at}; see the class docstring."""
        parts = ["stem"] + self.stage_names
        for i, name in enumerate(parts):
            # stem is frozen from 1, res2 from 2, res3 from 3, ...
            if freeze_at >= i + 1:
                part = getattr(self, name)
                for p in part.parameters():
                    p.requires_grad_(False)
                self.add_module(name, FrozenBatchNorm2d.convert(part))
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W] -> {name: Tensor[N, channels, H / stride, W / stride]} for out_features."""
        if x.dim() != 4:
            raise ValueError(f"ResNet takes a batch Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {name: self._shapes[name] for name in self._out_features}
