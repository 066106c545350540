"""Pure-PyTorch greedy NMS that settles many boxes per vectorized step.

Boxes are visited by decreasing score; `remaining` holds the undecided ones in that order. A box
whose higher-scored undecided boxes include none that would suppress it is certainly kept: every
box that could still suppress it is undecided (kept boxes that overlap it would already have
removed it). Those higher boxes all lie in a window of the first WINDOW undecided boxes, so one
(WINDOW x WINDOW) IoU test finds the window boxes that are kept (at least the first, usually many);
then every later undecided box that a newly kept box suppresses is removed. Python loops over
these steps, not over boxes. Class-aware NMS only tests pairs within a class.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_area, box_iou

# Undecided boxes examined per step: a (512 x 512) IoU test, small next to the (kept x remaining)
# test of the step, while settling most clusters of overlapping boxes in one step.
_WINDOW = 512


def _paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU (P,) of box pairs a[p], b[p] (P, 4): the same float operations as `box_iou`."""
    wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (box_area(a) + box_area(b) - inter)


def _suppressed_by(b: Tensor, cls: Tensor | None, keep: Tensor, pos: Tensor, remaining: Tensor,
                   threshold: float) -> Tensor:
    """(len remaining,) bool: undecided boxes suppressed by a newly kept box placed before them
    (keep = remaining[pos])."""
    if cls is None:
        sup = box_iou(b[keep], b[remaining]) > threshold
        after = torch.arange(remaining.numel(), device=b.device)[None, :] > pos[:, None]
        return (sup & after).any(0)
    # Only same-class pairs: group the undecided boxes by class (score order kept inside a class)
    # and pair each kept box with its class's run.
    rc = cls[remaining]
    by_class = torch.argsort(rc, stable=True)
    grouped = rc[by_class]
    first = torch.searchsorted(grouped, cls[keep])
    counts = torch.searchsorted(grouped, cls[keep], right=True) - first
    k = torch.repeat_interleave(torch.arange(keep.numel(), device=b.device), counts)
    j = by_class[torch.repeat_interleave(first - torch.cumsum(counts, 0) + counts, counts)
                 + torch.arange(k.numel(), device=b.device)]
    hit = (j > pos[k]) & (_paired_iou(b[keep[k]], b[remaining[j]]) > threshold)
    drop = torch.zeros(remaining.numel(), dtype=torch.bool, device=b.device)
    drop[j[hit]] = True
    return drop


def nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """Indices (int64) kept by greedy (class-aware if idxs is given) NMS, by decreasing score;
    see `detrun.ops.nms`. IoU in float32 (float64 for float64 boxes), torchvision's formula."""
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].to(torch.float64 if boxes.dtype == torch.float64 else torch.float32)
    cls = None if idxs is None else idxs[order]
    remaining = torch.arange(b.shape[0], device=b.device)
    kept = [remaining[:0]]
    while remaining.numel():
        win = remaining[:_WINDOW]
        # Positions (in `remaining`) of window boxes that no higher window box suppresses: kept.
        higher = box_iou(b[win], b[win]) > iou_threshold
        if cls is not None:
            higher &= cls[win][:, None] == cls[win][None, :]
        pos = torch.nonzero(~higher.triu(diagonal=1).any(0))[:, 0]
        keep = win[pos]
        kept.append(keep)
        drop = _suppressed_by(b, cls, keep, pos, remaining, iou_threshold)
        drop[pos] = True  # kept boxes leave too (even zero-area ones, whose IoU with themselves is nan)
        remaining = remaining[~drop]
    return order[torch.cat(kept).sort().values]
