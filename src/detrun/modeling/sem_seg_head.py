"""Semantic segmentation head on FPN features (Kirillov et al., "Panoptic Feature Pyramid Networks", 2019).

Parameter names follow Detectron2's ``SemSegFPNHead``: one ``nn.Sequential`` per input level named
after it (``p2``, ``p3``, ...), holding conv (+ norm, ReLU) and 2x bilinear upsampling steps
(``p4.0``, ``p4.2`` are convs, ``p4.1``, ``p4.3`` upsampling), and a 1x1 ``predictor``, so
``sem_seg_head.p2.0.weight``, ``sem_seg_head.p2.0.norm.weight`` and ``sem_seg_head.predictor.*``
of a Detectron2 checkpoint load as they are.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone.norm import Conv2dNorm
from .feature_protocol import FeatureUse, ReadsFeatures


class _ConvNormReLU(Conv2dNorm):
    """3x3 conv, norm, ReLU: Detectron2's ``Conv2d(..., norm=..., activation=F.relu)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


def _c2_msra_fill(conv: nn.Conv2d) -> None:
    # Detectron2's c2_msra_fill: He (fan-out) normal weights, zero bias.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class SemSegFPNHead(nn.Module, ReadsFeatures):
    """Per level: ``max(1, log2(stride / common_stride))`` conv-norm-ReLU steps, each followed by
    2x bilinear upsampling while the level is coarser than `common_stride`; the levels' maps are
    summed, a 1x1 conv predicts class logits at `common_stride`, upsampled bilinearly to the input.

    Args:
        in_features: the levels read, e.g. ``["p2", "p3", "p4", "p5"]``.
        in_strides: their strides, e.g. ``[4, 8, 16, 32]`` (they set the upsampling steps; checked
            against the backbone's ``output_shape()`` when the model is built).
        in_channels: channels of every level (an FPN's ``out_channels``).
        num_classes: classes predicted (for Panoptic FPN: 1 "things" + the stuff classes).
        conv_dims: channels of the per-level convs.
        common_stride: stride of the summed map (4 for P2); levels must not be finer.
        norm: "GN" (Detectron2's Panoptic FPN), "" (none), ... (see `get_norm`).
        loss_weight: factor on the cross-entropy (Detectron2's Panoptic FPN: 0.5).
        ignore_value: label ignored by the loss (255: void / padding).
    """

    def __init__(self, *, in_features: list[str], in_strides: list[int], in_channels: int, num_classes: int,
                 conv_dims: int = 128, common_stride: int = 4, norm: str = "GN", loss_weight: float = 1.0,
                 ignore_value: int = 255):
        super().__init__()
        if len(in_features) != len(in_strides) or not in_features:
            raise ValueError(f"SemSegFPNHead: in_features {list(in_features)} and in_strides {list(in_strides)} "
                             "must be non-empty and of one length")
        levels = sorted(zip(in_features, (int(s) for s in in_strides)), key=lambda fs: fs[1])
        finer = [f for f, s in levels if s < common_stride]
        if finer:
            raise ValueError(f"SemSegFPNHead in_features {finer} are finer than common_stride={common_stride}")
        self.in_features = [f for f, _ in levels]
        self._strides = tuple(s for _, s in levels)
        self.common_stride, self.loss_weight, self.ignore_value = common_stride, loss_weight, ignore_value
        self.num_classes = num_classes
        self.scale_heads = []
        for feature, stride in levels:
            channels = in_channels
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                conv = _ConvNormReLU(channels if k == 0 else conv_dims, conv_dims, 3, padding=1, norm=norm)
                _c2_msra_fill(conv)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            head = nn.Sequential(*ops)
            self.add_module(feature, head)
            self.scale_heads.append(head)
        self.predictor = nn.Conv2d(conv_dims, num_classes, 1)
        _c2_msra_fill(self.predictor)

    def feature_uses(self) -> list[FeatureUse]:
        return [FeatureUse("in_features", tuple(self.in_features), "in_strides", self._strides)]

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits at `common_stride`: Tensor[N, num_classes, H / common_stride, W / common_stride]."""
        x = None
        for feature, head in zip(self.in_features, self.scale_heads):
            y = head(features[feature])
            x = y if x is None else x + y
        return self.predictor(x)

    def forward(self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Training (`targets`: int64 Tensor[N, H, W] over the padded batch, `ignore_value` where
        unlabelled): ``(None, {"loss_sem_seg": ...})``. Inference: ``(logits Tensor[N, C, H, W], {})``
        at the padded input's resolution."""
        x = self.layers(features)
        if self.training:
            return None, self.losses(x, targets)
        return F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}

    def losses(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean cross-entropy over labelled pixels at full resolution, times `loss_weight`."""
        if targets is None:
            raise ValueError("SemSegFPNHead in training mode needs targets (the batch's label maps)")
        # float32: the upsampled logits are large and cross-entropy under fp16 loses precision
        logits = F.interpolate(logits.float(), scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        if logits.shape[-2:] != targets.shape[-2:]:
            raise ValueError(f"label maps of the batch are {tuple(targets.shape[-2:])}, logits "
                             f"{tuple(logits.shape[-2:])}: pad both to the backbone's size_divisibility")
        loss = F.cross_entropy(logits, targets, reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}
