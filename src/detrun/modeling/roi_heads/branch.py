"""`ROIBranch`: one per-ROI head (masks, keypoints, ...) of the ROI heads, as a recipe lists it."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.structures import Boxes, Instances

from .base import PROPOSAL_SELECTIONS
from .mask_head import MaskRCNNConvUpsampleHead
from .poolers import ROIPooler


class ROIBranch:
    """What a per-ROI branch needs: features to pool, its pooler and head, and which proposals it
    trains on. `StandardROIHeads(branches={"mask": ROIBranch(...)})` registers the pooler and head
    as ``{name}_pooler`` / ``{name}_head`` (Detectron2's parameter names).

    The head is called as ``head(pooled_features, instances)``: in training on the selected
    sampled proposals (with their `gt_*` targets), returning ``{"loss_*": ...}``; at inference on
    the detections (`pred_boxes`, `pred_classes`), setting its outputs (`pred_masks`,
    `pred_keypoints`) on them and returning them.

    Args:
        in_features: backbone features the pooler reads, e.g. ``["p2", "p3", "p4", "p5"]``.
        pooler: pools each box's features (14 x 14 for masks and keypoints).
        head: see above.
        proposals: training proposals: "foreground" (masks) or "visible_keypoints" (foreground
            proposals with a visible keypoint in the box).
        box_scale: the branch sees each box enlarged by this factor about its centre (selection,
            pooling, training targets and decoding alike), for points on or just outside the box
            such as corners. Only for heads whose outputs are in image coordinates (keypoints):
            masks are pasted into the detected boxes later. 1.0 is Detectron2's and torchvision's.
    """

    def __init__(self, *, in_features: list[str], pooler: ROIPooler, head: nn.Module, proposals: str = "foreground",
                 box_scale: float = 1.0):
        if proposals not in PROPOSAL_SELECTIONS:
            raise ValueError(f"ROIBranch proposals must be one of {sorted(PROPOSAL_SELECTIONS)}, got '{proposals}'")
        if box_scale < 1.0:
            raise ValueError(f"ROIBranch box_scale must be >= 1 (an enlargement), got {box_scale}")
        if box_scale != 1.0 and isinstance(head, MaskRCNNConvUpsampleHead):
            raise ValueError("ROIBranch box_scale must be 1 for a mask head: masks are pasted into the detected "
                             "boxes, not the enlarged ones")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.head = head
        self.proposals = proposals
        self.select = PROPOSAL_SELECTIONS[proposals]
        self.box_scale = float(box_scale)

    def boxes_seen(self, instances: list[Instances], field: str) -> list[Instances]:
        """`instances` as the branch sees them: shallow copies with `field` (`proposal_boxes` or
        `pred_boxes`) enlarged by `box_scale` about each box's centre; the same objects at 1.0."""
        if self.box_scale == 1.0:
            return instances
        return [Instances(p.image_size, **{**p.get_fields(), field: Boxes(self.scale_boxes(p.get(field).tensor))})
                for p in instances]

    def scale_boxes(self, boxes: Tensor) -> Tensor:
        """Boxes Tensor[R, 4] as the branch sees them: enlarged by `box_scale` about each centre."""
        if self.box_scale == 1.0:
            return boxes
        centres, half_sizes = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * self.box_scale
        return torch.cat([centres - half_sizes, centres + half_sizes], 1)
