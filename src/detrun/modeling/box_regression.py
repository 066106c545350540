"""Box coder (boxes <-> regression deltas) and the box regression losses."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

# Largest log-scale a delta may apply: boxes grow at most 1000/16 x, so exp() can't overflow
# (Detectron2 and torchvision both use this value).
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class Box2BoxTransform:
    """R-CNN box parametrization: deltas (dx, dy, dw, dh) between a source and a target box.

    ``dx = wx * (tx - sx) / sw``, ``dw = ww * log(tw / sw)`` (and the same for y / h), with box
    centres (sx, sy), sizes (sw, sh) = (x2 - x1, y2 - y1), no "+1" (Detectron2 and torchvision;
    the arithmetic follows theirs operation by operation, so decoded boxes are bit-identical).

    Args:
        weights: (wx, wy, ww, wh) scale factors of the deltas; (1, 1, 1, 1) for the RPN and
            (10, 10, 5, 5) for the Fast R-CNN box head in both libraries.
        scale_clamp: upper bound applied to dw, dh before exp() when decoding.
    """

    def __init__(self, *, weights: tuple[float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP):
        if len(weights) != 4:
            raise ValueError(f"Box2BoxTransform weights must have 4 values (wx, wy, ww, wh), got {weights}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = float(scale_clamp)

    def get_deltas(self, src_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """Deltas that turn `src_boxes` into `target_boxes`.

        Args:
            src_boxes, target_boxes: Tensor[N, 4] XYXY in pixels; sources must have positive size.

        Returns:
            float Tensor[N, 4] of (dx, dy, dw, dh).
        """
        src_boxes = src_boxes.to(target_boxes.dtype)
        src_w = src_boxes[:, 2] - src_boxes[:, 0]
        src_h = src_boxes[:, 3] - src_boxes[:, 1]
        src_x = src_boxes[:, 0] + 0.5 * src_w
        src_y = src_boxes[:, 1] + 0.5 * src_h
        tgt_w = target_boxes[:, 2] - target_boxes[:, 0]
        tgt_h = target_boxes[:, 3] - target_boxes[:, 1]
        tgt_x = target_boxes[:, 0] + 0.5 * tgt_w
        tgt_y = target_boxes[:, 1] + 0.5 * tgt_h
        wx, wy, ww, wh = self.weights
        return torch.stack(
            (
                wx * (tgt_x - src_x) / src_w,
                wy * (tgt_y - src_y) / src_h,
                ww * torch.log(tgt_w / src_w),
                wh * torch.log(tgt_h / src_h),
            ),
            dim=1,
        )

    def apply_deltas(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Decode deltas relative to boxes.

        Args:
            deltas: Tensor[N, K*4], K boxes (e.g. one per class) per reference box.
            boxes: Tensor[N, 4] XYXY reference boxes (anchors or proposals), in pixels.

        Returns:
            Tensor[N, K*4] XYXY boxes in the dtype of `deltas` (float32 for half deltas).
        """
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.scale_clamp)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * (torch.exp(dw) * widths[:, None])
        half_h = 0.5 * (torch.exp(dh) * heights[:, None])
        pred = torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)
        return pred.flatten(1)


BOX_REG_LOSS_TYPES = ("smooth_l1", "giou")


def check_box_reg_loss_type(owner: str, loss_type: str) -> None:
    """Raise ValueError naming `owner` unless `loss_type` is one of `BOX_REG_LOSS_TYPES`."""
    if loss_type not in BOX_REG_LOSS_TYPES:
        raise ValueError(f"{owner} box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got '{loss_type}'")


def giou_loss(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Generalized IoU loss ``1 - GIoU`` of matching box pairs (Rezatofighi et al. 2019).

    Args:
        boxes1, boxes2: Tensor[N, 4] XYXY, pairs matched by index.
        eps: guards the divisions for degenerate boxes.

    Returns:
        Tensor[N], each in [0, 2].
    """
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    inter_w = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0)
    inter_h = (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    inter = inter_w * inter_h
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    hull = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - iou + (hull - union) / (hull + eps)


def box_regression_loss(
    box2box_transform: Box2BoxTransform,
    src_boxes: Tensor,
    pred_deltas: Tensor,
    gt_boxes: Tensor,
    *,
    loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> Tensor:
    """Summed box regression loss of foreground boxes (the caller normalizes).

    Args:
        box2box_transform: the coder the deltas are expressed in.
        src_boxes: Tensor[R, 4] anchors or proposals the deltas apply to.
        pred_deltas: Tensor[R, 4] predicted deltas.
        gt_boxes: Tensor[R, 4] matched ground-truth boxes.
        loss_type: "smooth_l1" (on deltas) or "giou" (on decoded boxes).
        smooth_l1_beta: smooth-L1 transition point; 0 is plain L1.

    Returns:
        Scalar tensor; 0 (still attached to `pred_deltas`) when R == 0.
    """
    check_box_reg_loss_type("box_regression_loss", loss_type)
    pred_deltas = pred_deltas.float()
    if loss_type == "smooth_l1":
        target = box2box_transform.get_deltas(src_boxes, gt_boxes)
        return F.smooth_l1_loss(pred_deltas, target, beta=smooth_l1_beta, reduction="sum")
    pred_boxes = box2box_transform.apply_deltas(pred_deltas, src_boxes)
    return giou_loss(pred_boxes, gt_boxes).sum()
