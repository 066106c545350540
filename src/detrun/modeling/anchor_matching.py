"""Labelling anchors against ground truth: shared by the RPN and dense detectors (RetinaNet)."""
from __future__ import annotations

import torch
from torch import Tensor

from detrun.structures import Boxes, Instances, pairwise_iou

from .matcher import Matcher


@torch.no_grad()
def match_anchors(
    anchors: Boxes, gt_instances: list[Instances], matcher: Matcher, *, boundary_thresh: float = -1.0
) -> list[tuple[Tensor, Tensor]]:
    """Match every anchor of every image to its best ground-truth box.

    Args:
        anchors: Boxes[A], all levels concatenated (shared by the images).
        gt_instances: per image, Instances with `gt_boxes`.
        matcher: IoU intervals -> labels (e.g. RPN 0.3 / 0.7, RetinaNet 0.4 / 0.5).
        boundary_thresh: anchors reaching more than this many pixels outside the image are
            ignored (label -1); negative disables.

    Returns:
        Per image, (matched gt index int64 Tensor[A] (0 when there is no gt), label int8
        Tensor[A]: 1 foreground, 0 background, -1 ignored).
    """
    results = []
    for gt in gt_instances:
        matched_idxs, labels = matcher(pairwise_iou(gt.gt_boxes.to(anchors.device), anchors))
        if boundary_thresh >= 0:
            labels.masked_fill_(~anchors.inside_box(gt.image_size, boundary_thresh), -1)
        results.append((matched_idxs, labels))
    return results


def matched_boxes(gt_boxes: Boxes, matched_idxs: Tensor) -> Tensor:
    """The matched gt box of each anchor, Tensor[A, 4] (zeros when the image has no gt)."""
    if len(gt_boxes) == 0:
        return gt_boxes.tensor.new_zeros((len(matched_idxs), 4))
    return gt_boxes.tensor[matched_idxs]
