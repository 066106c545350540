"""StandardROIHeads: box head, then optionally mask head, on pooled FPN features."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import ImageList, Instances

from ..matcher import Matcher
from .base import ROIHeads
from .fast_rcnn import FastRCNNOutputLayers
from .poolers import ROIPooler


class StandardROIHeads(ROIHeads):
    """Thin orchestrator of the per-task heads (Detectron2's StandardROIHeads).

    Args (besides those of `ROIHeads`):
        box_in_features: feature levels the box pooler reads, e.g. ``["p2", "p3", "p4", "p5"]``.
        box_pooler: pools box features (7 x 7).
        box_head: pooled features -> per-box features.
        box_predictor: per-box features -> class logits and box deltas, losses, inference.
        mask_in_features: feature levels of the mask pooler; None for no mask head.
        mask_pooler: pools mask features (14 x 14).
        mask_head: pooled features -> mask logits, loss, inference.

    Inference returns per image `pred_boxes`, `scores`, `pred_classes` and, with a mask head,
    `pred_masks` as float probabilities Tensor[N, 1, M, M] (pasted later by `detector_postprocess`).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: FastRCNNOutputLayers,
        mask_in_features: list[str] | None = None,
        mask_pooler: ROIPooler | None = None,
        mask_head: nn.Module | None = None,
    ):
        super().__init__(
            num_classes=num_classes,
            batch_size_per_image=batch_size_per_image,
            positive_fraction=positive_fraction,
            proposal_matcher=proposal_matcher,
            proposal_append_gt=proposal_append_gt,
        )
        raise NotImplementedError

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        raise NotImplementedError
