"""StandardROIHeads: box head, then optionally mask head, on pooled FPN features."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import ImageList, Instances

from ..feature_protocol import FeatureUse, ReadsFeatures
from ..matcher import Matcher
from .base import ROIHeads, select_foreground_proposals
from .fast_rcnn import FastRCNNOutputLayers
from .poolers import ROIPooler


class StandardROIHeads(ROIHeads, ReadsFeatures):
    """Thin orchestrator of the per-task heads (Detectron2's StandardROIHeads).

    Training: label and sample proposals (`ROIHeads`), then the box losses on all sampled
    proposals and the mask loss on the foreground ones. Inference: box detections, then masks
    for the detected boxes.

    Args (besides those of `ROIHeads`):
        box_in_features: feature levels the box pooler reads, e.g. ``["p2", "p3", "p4", "p5"]``.
        box_pooler: pools box features (7 x 7).
        box_head: pooled features -> per-box features.
        box_predictor: per-box features -> class logits and box deltas, losses, inference.
        mask_in_features: feature levels of the mask pooler; None for no mask head.
        mask_pooler: pools mask features (14 x 14).
        mask_head: (pooled features, instances) -> {"loss_mask"} in training, instances with
            `pred_masks` in inference.

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
        mask_parts = (mask_in_features, mask_pooler, mask_head)
        if any(p is None for p in mask_parts) and any(p is not None for p in mask_parts):
            raise ValueError("StandardROIHeads: give all of mask_in_features, mask_pooler and mask_head, or none")
        self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        self.mask_in_features = list(mask_in_features) if self.mask_on else None
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head

    def feature_uses(self) -> list[FeatureUse]:
        heads = [("box", self.box_in_features, self.box_pooler)]
        if self.mask_on:
            heads.append(("mask", self.mask_in_features, self.mask_pooler))
        return [FeatureUse(f"{head}_in_features", tuple(names), f"{head}_pooler.scales",
                           _scales(pooler), as_scales=True) for head, names, pooler in heads]

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        """Training: (sampled proposals, {loss_cls, loss_box_reg[, loss_mask]}); inference: (detections, {})."""
        if self.training:
            if targets is None:
                raise ValueError("StandardROIHeads in training mode needs targets (gt Instances) for every image")
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals)
            if self.mask_on:
                losses.update(self._forward_mask(features, proposals))
            return proposals, losses
        detections = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def forward_with_given_boxes(self, features: dict[str, Tensor], instances: list[Instances]) -> list[Instances]:
        """Inference of the per-detection heads (masks) for given `pred_boxes` / `pred_classes`."""
        if self.mask_on:
            instances = self._forward_mask(features, instances)
        return instances

    def _forward_box(self, features: dict[str, Tensor], proposals: list[Instances]):
        x = self.box_pooler([features[f] for f in self.box_in_features], [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(self.box_head(x))
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        return self.box_predictor.inference(predictions, proposals)

    def _forward_mask(self, features: dict[str, Tensor], instances: list[Instances]):
        if self.training:
            instances = select_foreground_proposals(instances, self.num_classes)
            boxes = [p.proposal_boxes for p in instances]
        else:
            boxes = [p.pred_boxes for p in instances]
        x = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
        return self.mask_head(x, instances)


def _scales(pooler: nn.Module) -> tuple[float, ...] | None:
    scales = getattr(pooler, "scales", None)  # a custom pooler may not expose them
    return tuple(scales) if scales is not None else None
