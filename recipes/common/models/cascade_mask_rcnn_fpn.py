"""Cascade Mask R-CNN, ResNet-50-FPN, with Detectron2's defaults (its cascade_mask_rcnn_R_50_FPN_1x).

`mask_rcnn_fpn` whose ROI heads become three box stages trained at IoU 0.5 / 0.6 / 0.7 with
class-agnostic regression and box-coder weights (10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15);
the mask branch stays. `cascade_roi_heads` turns any standard ROI-heads node into a cascade, so
other recipes (`shapes_cascade_mask_rcnn`) derive theirs the same way.
"""
from copy import deepcopy

from omegaconf import DictConfig

from detrun.config import L
from detrun.modeling import CascadeROIHeads, Matcher

from .mask_rcnn_fpn import model as _mask_rcnn

CASCADE_IOUS = (0.5, 0.6, 0.7)
CASCADE_BOX_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))


def cascade_roi_heads(roi_heads: DictConfig, ious=CASCADE_IOUS, box_weights=CASCADE_BOX_WEIGHTS) -> DictConfig:
    """A `CascadeROIHeads` node with one copy of `roi_heads`' box head and predictor per IoU.

    The stages' interpolations point at the new places (``box_heads[k]`` one level deeper), every
    predictor regresses class-agnostic boxes with its stage's coder weights; sampling settings,
    the box pooler and the branches are kept.
    """
    box_heads, box_predictors = [], []
    for k, weights in enumerate(box_weights):
        head = deepcopy(roi_heads.box_head)
        head.update(in_channels="${....backbone.out_channels}", input_size="${...box_pooler.output_size}")
        predictor = deepcopy(roi_heads.box_predictor)
        predictor.update(in_channels=f"${{...box_heads[{k}].fc_dims[1]}}", num_classes="${...num_classes}",
                         cls_agnostic_bbox_reg=True)
        predictor.box2box_transform.weights = list(weights)
        box_heads.append(head)
        box_predictors.append(predictor)
    return L(CascadeROIHeads)(
        num_classes=roi_heads.num_classes,
        batch_size_per_image=roi_heads.batch_size_per_image,
        positive_fraction=roi_heads.positive_fraction,
        proposal_append_gt=roi_heads.get("proposal_append_gt", True),
        box_in_features=deepcopy(roi_heads.box_in_features),
        box_pooler=deepcopy(roi_heads.box_pooler),
        box_heads=box_heads,
        box_predictors=box_predictors,
        proposal_matchers=[L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False)
                           for iou in ious],
        branches=deepcopy(roi_heads.branches),
    )


model = deepcopy(_mask_rcnn)  # a copy, so that importing both models keeps both intact
model.proposal_generator.post_nms_topk = [2000, 1000]
model.roi_heads = cascade_roi_heads(model.roi_heads)
