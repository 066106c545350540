"""Region Proposal Network: anchors + head + matching/sampling losses + proposal selection."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import ImageList, Instances

from ..box_regression import Box2BoxTransform
from ..matcher import Matcher
from .anchor_generator import DefaultAnchorGenerator
from .base import ProposalGenerator


class RPN(ProposalGenerator):
    """Region Proposal Network (Faster R-CNN), Detectron2-compatible.

    Args:
        in_features: names of the feature levels to use, e.g. ``["p2", "p3", "p4", "p5", "p6"]``.
        head: module mapping list of features -> (objectness logits, anchor deltas) per level.
        anchor_generator: makes the anchors the head predicts for.
        anchor_matcher: labels anchors against gt boxes (IoU 0.3 / 0.7, low-quality matches on).
        box2box_transform: anchor <-> box deltas coder (weights (1, 1, 1, 1)).
        batch_size_per_image: anchors sampled per image for the losses (256).
        positive_fraction: upper bound of the positive share of the sampled anchors (0.5).
        pre_nms_topk: (train, test) top-scoring anchors kept per level per image before NMS.
        post_nms_topk: (train, test) proposals kept per image after NMS.
        nms_thresh: IoU threshold of the per-level NMS (0.7).
        min_box_size: proposals whose width or height is not larger than this (input pixels)
            are dropped (Detectron2: 0; torchvision: 1e-3).
        anchor_boundary_thresh: anchors reaching more than this many pixels outside the image
            are ignored in training; negative disables (the default in both libraries).
        loss_weight: multiplier of both losses, or a dict ``{"loss_rpn_cls": w, "loss_rpn_loc": w}``.
        box_reg_loss_type: "smooth_l1" or "giou".
        smooth_l1_beta: smooth-L1 transition point; 0 makes it an L1 loss (Detectron2 default).
    """

    def __init__(
        self,
        *,
        in_features: list[str],
        head: nn.Module,
        anchor_generator: DefaultAnchorGenerator,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk: tuple[int, int] = (2000, 1000),
        post_nms_topk: tuple[int, int] = (1000, 1000),
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ):
        super().__init__()
        raise NotImplementedError

    def forward(
        self, images: ImageList, features: dict[str, Tensor], gt_instances: list[Instances] | None = None
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        raise NotImplementedError
