"""Cascade R-CNN (Cai & Vasconcelos 2018): box stages of rising IoU, each refining the previous one's boxes."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.ops import clip_boxes_to_image
from detrun.structures import Boxes, Instances

from ..matcher import Matcher
from .base import attach_targets, match_and_label
from .branch import ROIBranch
from .fast_rcnn import FastRCNNOutputLayers, proposal_box_tensor
from .poolers import ROIPooler
from .standard import StandardROIHeads


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by `scale`."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


class CascadeROIHeads(StandardROIHeads):
    """Cascade R-CNN's ROI heads, Detectron2-compatible (parameter names ``box_head.{k}``,
    ``box_predictor.{k}``; losses ``loss_cls_stage{k}``, ``loss_box_reg_stage{k}``).

    Stage 0 runs on the sampled proposals (as `StandardROIHeads`); stage k > 0 runs on the boxes
    stage k - 1 predicted for them (clipped; empty ones dropped in training), re-labelled against
    the ground truth by ``proposal_matchers[k]`` without sampling. Each stage's pooled features
    pass their gradient scaled by 1 / num_stages, so the shared backbone sees one stage's worth.
    Inference: class probabilities averaged over the stages, boxes of the last stage, then the
    last predictor's thresholding and NMS. The branches (masks...) train on stage 0's sampled
    proposals and predict on the final detections.

    Args (besides `StandardROIHeads`' `num_classes`, `batch_size_per_image`,
    `positive_fraction`, `proposal_append_gt`, `box_in_features`, `box_pooler`, `branches`):
        box_heads: one box head per stage.
        box_predictors: one predictor per stage, normally class-agnostic
            (``cls_agnostic_bbox_reg=True``) with box-coder weights growing with the stage's IoU
            ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)).
        proposal_matchers: one per stage (IoU 0.5, 0.6, 0.7); the first also labels the
            proposals for sampling.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        proposal_append_gt: bool = True,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_heads: list[nn.Module],
        box_predictors: list[FastRCNNOutputLayers],
        proposal_matchers: list[Matcher],
        branches: dict[str, ROIBranch] | None = None,
    ):
        if not len(box_heads) == len(box_predictors) == len(proposal_matchers) > 0:
            raise ValueError(f"CascadeROIHeads needs as many box_heads ({len(box_heads)}), box_predictors "
                             f"({len(box_predictors)}) and proposal_matchers ({len(proposal_matchers)}), at least one")
        per_class = [k for k, p in enumerate(box_predictors) if not getattr(p, "cls_agnostic_bbox_reg", True)]
        if per_class:
            raise ValueError(f"CascadeROIHeads refines one box per proposal: box_predictors {per_class} need "
                             "cls_agnostic_bbox_reg=True")
        super().__init__(num_classes=num_classes, batch_size_per_image=batch_size_per_image,
                         positive_fraction=positive_fraction, proposal_matcher=proposal_matchers[0],
                         proposal_append_gt=proposal_append_gt, box_in_features=box_in_features,
                         box_pooler=box_pooler, box_head=nn.ModuleList(box_heads),
                         box_predictor=nn.ModuleList(box_predictors), branches=branches)
        self.proposal_matchers = list(proposal_matchers)
        self.num_stages = len(box_heads)

    def forward_box(self, features: dict[str, Tensor], proposals: list[Instances],
                    targets: list[Instances] | None = None) -> dict[str, Tensor] | list[Instances]:
        """Per-stage losses (training) or the cascade's detections (inference); see the class docstring."""
        if not self.training:
            image_sizes = [p.image_size for p in proposals]
            sizes = torch.tensor(image_sizes, dtype=torch.int64, device=features[self.box_in_features[0]].device)
            detections = self.detect(features, [p.proposal_boxes.tensor for p in proposals], sizes.view(-1, 2))
            return [Instances(size, pred_boxes=Boxes(b), scores=s, pred_classes=c)
                    for (b, s, c), size in zip(detections, image_sizes)]
        stages = []
        boxes = None
        for k in range(self.num_stages):
            if k > 0:
                proposals = self._proposals_from_boxes(boxes, [p.image_size for p in proposals])
                if self.training:
                    labels = match_and_label([p.proposal_boxes for p in proposals], targets, self.proposal_matchers[k],
                                             self.num_classes)
                    proposals = [attach_targets(p, gt, matched, classes)
                                 for p, gt, (matched, classes) in zip(proposals, targets, labels)]
            predictions = self._run_stage(features, proposals, k)
            boxes = self.box_predictor[k].predict_boxes(predictions, proposals)
            stages.append((predictions, proposals))
        if self.training:
            losses = {}
            for k, (predictions, stage_proposals) in enumerate(stages):
                stage_losses = self.box_predictor[k].losses(predictions, stage_proposals)
                losses.update({f"{name}_stage{k}": value for name, value in stage_losses.items()})
            return losses
        per_stage = [self.box_predictor[k].predict_probs(pred, props) for k, (pred, props) in enumerate(stages)]
        probs = [sum(per_image) / self.num_stages for per_image in zip(*per_stage)]
        return [self.box_predictor[-1].detections(b, s, p.image_size) for b, s, p in zip(boxes, probs, proposals)]

    def detect(self, features: dict[str, Tensor], proposal_boxes: list[Tensor], image_sizes: Tensor
               ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The cascade's inference on tensors (the exportable core): per image (boxes, scores,
        classes) of the last stage's boxes and the stage-averaged probabilities."""
        boxes, per_stage = None, []
        for k in range(self.num_stages):
            if k > 0:  # the previous stage's boxes, detached and clipped
                proposal_boxes = [clip_boxes_to_image(b[:, :4].detach(), image_sizes[i]) for i, b in enumerate(boxes)]
            predictions = self._run_stage(features, proposal_boxes, k)
            boxes = self.box_predictor[k].predict_boxes(predictions, proposal_boxes)
            per_stage.append(self.box_predictor[k].predict_probs(predictions, proposal_boxes))
        probs = [sum(per_image) / self.num_stages for per_image in zip(*per_stage)]
        return [self.box_predictor[-1].detection_tensors(b, s, image_sizes[i]) for i, (b, s) in enumerate(zip(boxes, probs))]

    def _run_stage(self, features: dict[str, Tensor], proposals: list[Instances] | list[Tensor],
                   stage: int) -> tuple[Tensor, Tensor]:
        x = self.box_pooler([features[f] for f in self.box_in_features], [proposal_box_tensor(p) for p in proposals])
        if self.training:
            x = _ScaleGradient.apply(x, 1.0 / self.num_stages)
        return self.box_predictor[stage](self.box_head[stage](x))

    def _proposals_from_boxes(self, boxes: list[Tensor], image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """The previous stage's (class-agnostic) boxes, detached and clipped, as the next stage's proposals."""
        proposals = []
        for boxes_i, image_size in zip(boxes, image_sizes):
            boxes_i = Boxes(clip_boxes_to_image(boxes_i[:, :4].detach(), image_size))
            if self.training:
                boxes_i = boxes_i[boxes_i.nonempty()]
            proposals.append(Instances(image_size, proposal_boxes=boxes_i))
        return proposals
