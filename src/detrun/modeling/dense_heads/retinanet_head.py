"""RetinaNet's head: two conv towers shared across levels, then per-anchor class logits and box deltas."""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..backbone.norm import get_norm


class RetinaNetHead(nn.Module):
    """Classification and box-regression subnets (Lin et al. 2017), applied to every level.

    Parameter names follow Detectron2 (``cls_subnet.{i}``, ``bbox_subnet.{i}``, ``cls_score``,
    ``bbox_pred``; without norms the convs are ``cls_subnet.0/2/4/6``), so its checkpoints load
    as they are. Initialization: normal(std=0.01) weights and zero biases, except the class
    bias ``-log((1 - prior_prob) / prior_prob)``, so that every anchor starts as background
    with probability 1 - prior_prob (the paper's trick against the first steps' huge loss).

    Args:
        in_channels: channels of every input level (an FPN has one width for all levels).
        num_classes: foreground classes K (no background logit: sigmoid per class).
        num_anchors: anchors per cell A, the same on every level (e.g. 9 = 3 sizes x 3 ratios).
        conv_dims: widths of the convs in each tower (Detectron2 and torchvision: 4 x 256).
        norm: norm after each tower conv ("" none, "GN", "BN"...), shared across levels.
        prior_prob: initial foreground probability of every anchor and class.
    """

    def __init__(self, *, in_channels: int, num_classes: int, num_anchors: int,
                 conv_dims: list[int] = (256, 256, 256, 256), norm: str = "", prior_prob: float = 0.01):
        super().__init__()
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"RetinaNetHead prior_prob must be in (0, 1), got {prior_prob}")
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.cls_subnet = self._tower(in_channels, conv_dims, norm)
        self.bbox_subnet = self._tower(in_channels, conv_dims, norm)
        channels = conv_dims[-1] if len(conv_dims) else in_channels
        self.cls_score = nn.Conv2d(channels, num_anchors * num_classes, kernel_size=3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, kernel_size=3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.constant_(module.bias, 0.0)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))

    @staticmethod
    def _tower(in_channels: int, conv_dims: list[int], norm: str) -> nn.Sequential:
        layers = []
        for dim in conv_dims:
            layers.append(nn.Conv2d(in_channels, dim, kernel_size=3, padding=1))
            norm_layer = get_norm(norm, dim)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(nn.ReLU())
            in_channels = dim
        return nn.Sequential(*layers)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: class logits Tensor[N, A*K, H, W] and box deltas Tensor[N, A*4, H, W]."""
        logits = [self.cls_score(self.cls_subnet(x)) for x in features]
        deltas = [self.bbox_pred(self.bbox_subnet(x)) for x in features]
        return logits, deltas
