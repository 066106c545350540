"""Selecting proposals from dense RPN predictions, and adding ground truth to proposals."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from detrun.ops import batched_nms, clip_boxes_to_image, nonempty_boxes
from detrun.structures import Boxes, Instances

from ..box_regression import Box2BoxTransform


@torch.no_grad()
def find_top_rpn_proposals(
    anchors: list[Boxes],
    pred_objectness_logits: list[Tensor],
    pred_anchor_deltas: list[Tensor],
    image_sizes: list[tuple[int, int]],
    *,
    box2box_transform: Box2BoxTransform,
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    nms_on_sigmoid: bool = False,
) -> list[Instances]:
    """Top proposals per image: per-level top-k, decode, clip, drop small, per-level NMS, top-k.

    The order of operations is that of Detectron2 and torchvision, so both give the same boxes
    with the same arguments. Only the top-k anchors of each level are decoded (decoding is
    per-box, so the result equals decoding all anchors first, at a fraction of the cost).

    Args:
        anchors: per level, Boxes[A_l] shared by all images.
        pred_objectness_logits: per level, Tensor[N, A_l].
        pred_anchor_deltas: per level, Tensor[N, A_l, 4].
        image_sizes: per image, the (height, width) before padding; boxes are clipped to it.
        box2box_transform: decodes the deltas.
        nms_thresh: IoU threshold of the NMS, done independently per level.
        pre_nms_topk: top-scoring anchors kept per level per image before NMS.
        post_nms_topk: proposals kept per image after NMS.
        min_box_size: drop boxes whose width or height is not larger than this (pixels).
        nms_on_sigmoid: rank boxes for NMS by sigmoid probability (torchvision) rather than by
            logit (Detectron2). Same order, except that large logits all saturate to a
            probability of exactly 1.0 and then tie; matching torchvision needs its tie order.

    Returns:
        Per image, Instances with `proposal_boxes` (Boxes) and `objectness_logits` (Tensor),
        sorted by decreasing logit.
    """
    sizes = torch.tensor(image_sizes, dtype=torch.int64, device=pred_objectness_logits[0].device).view(-1, 2)
    proposals = top_rpn_proposals([a.tensor for a in anchors], pred_objectness_logits, pred_anchor_deltas, sizes,
                                  box2box_transform=box2box_transform, nms_thresh=nms_thresh,
                                  pre_nms_topk=pre_nms_topk, post_nms_topk=post_nms_topk,
                                  min_box_size=min_box_size, nms_on_sigmoid=nms_on_sigmoid)
    return [Instances(image_size, proposal_boxes=Boxes(boxes), objectness_logits=logits)
            for (boxes, logits), image_size in zip(proposals, image_sizes)]


@torch.no_grad()
def top_rpn_proposals(
    anchors: list[Tensor],
    pred_objectness_logits: list[Tensor],
    pred_anchor_deltas: list[Tensor],
    image_sizes: Tensor,
    *,
    box2box_transform: Box2BoxTransform,
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    nms_on_sigmoid: bool = False,
) -> list[tuple[Tensor, Tensor]]:
    """`find_top_rpn_proposals` on tensors only (the exportable core): anchors per level as
    Tensor[A_l, 4], image sizes as an int64 Tensor[N, 2] of (height, width). Returns per image
    (proposal boxes Tensor[R_i, 4], objectness logits Tensor[R_i]), by decreasing logit."""
    num_images = image_sizes.shape[0]
    device = pred_objectness_logits[0].device
    batch_idx = torch.arange(num_images, device=device)[:, None]
    topk_logits, topk_anchors, topk_deltas, level_ids = [], [], [], []
    for level, (anchors_l, logits_l, deltas_l) in enumerate(zip(anchors, pred_objectness_logits, pred_anchor_deltas)):
        k = torch.sym_min(pre_nms_topk, logits_l.shape[1])  # symbolic under torch.export
        logits_l, idx = logits_l.topk(k, dim=1)
        topk_logits.append(logits_l)
        topk_anchors.append(anchors_l[idx])
        topk_deltas.append(deltas_l[batch_idx, idx])
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    logits = torch.cat(topk_logits, dim=1).float()
    deltas = torch.cat(topk_deltas, dim=1)
    boxes = box2box_transform.apply_deltas(deltas.reshape(-1, 4), torch.cat(topk_anchors, dim=1).reshape(-1, 4))
    boxes = boxes.view(num_images, -1, 4)
    level_ids = torch.cat(level_ids)

    results = []
    for i in range(num_images):
        boxes_i, logits_i, lvl = boxes[i], logits[i], level_ids
        # Diverged or random weights can produce inf/nan; dropping them keeps inference running.
        valid = torch.isfinite(boxes_i).all(dim=1) & torch.isfinite(logits_i)
        boxes_i = clip_boxes_to_image(boxes_i, image_sizes[i])
        valid &= nonempty_boxes(boxes_i, min_box_size)
        boxes_i, logits_i, lvl = boxes_i[valid], logits_i[valid], lvl[valid]
        scores_i = logits_i.sigmoid() if nms_on_sigmoid else logits_i
        keep = batched_nms(boxes_i, scores_i, lvl, nms_thresh)[:post_nms_topk]
        results.append((boxes_i[keep], logits_i[keep]))
    return results


def add_ground_truth_to_proposals(targets: list[Instances], proposals: list[Instances]) -> list[Instances]:
    """Append each image's gt boxes to its proposals, with a near-certain objectness logit.

    Gives the ROI heads perfectly placed positives early in training (Detectron2's and
    torchvision's practice).

    Other fields of the proposals (anything besides `proposal_boxes` and `objectness_logits`)
    are kept when the gt Instances have a field of that name, whose values the gt rows then
    take (Detectron2's rule); the rest are dropped from the result, since gt boxes have no
    value for them.
    """
    # logit of probability 1 - 1e-10: "certainly an object", finite.
    gt_logit = math.log((1.0 - 1e-10) / 1e-10)
    out = []
    for gt, props in zip(targets, proposals):
        logits = props.objectness_logits
        gt_props = Instances(
            props.image_size,
            proposal_boxes=gt.gt_boxes.to(logits.device),
            objectness_logits=torch.full((len(gt),), gt_logit, dtype=logits.dtype, device=logits.device),
        )
        kept = Instances(props.image_size)
        for name, value in props.get_fields().items():
            if gt_props.has(name) or gt.has(name):
                kept.set(name, value)
                if not gt_props.has(name):
                    gt_props.set(name, gt.get(name))
        out.append(Instances.cat([kept, gt_props]))
    return out
