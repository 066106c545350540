"""`ROIBranch`: one per-ROI head (masks, keypoints, ...) of the ROI heads, as a recipe lists it."""
from __future__ import annotations

from torch import nn

from .base import PROPOSAL_SELECTIONS
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
    """

    def __init__(self, *, in_features: list[str], pooler: ROIPooler, head: nn.Module, proposals: str = "foreground"):
        if proposals not in PROPOSAL_SELECTIONS:
            raise ValueError(f"ROIBranch proposals must be one of {sorted(PROPOSAL_SELECTIONS)}, got '{proposals}'")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.head = head
        self.proposals = proposals
        self.select = PROPOSAL_SELECTIONS[proposals]
