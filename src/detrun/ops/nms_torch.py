"""Pure-PyTorch greedy NMS, blocked so that Python loops over blocks of boxes, not over boxes."""
from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou

# Boxes resolved together: a (B, B) suppression matrix per block. 512 keeps it at 256 KB of bools
# while the number of Python-level block steps stays small for 20k boxes.
_BLOCK = 512


def _suppresses(a: Tensor, b: Tensor, threshold: float, ca: Tensor | None, cb: Tensor | None) -> Tensor:
    """(len a, len b) bool: box a_i would suppress box b_j (IoU > threshold, same category)."""
    s = box_iou(a, b) > threshold
    return s if ca is None else s & (ca[:, None] == cb[None, :])


def _resolve_block(sup: Tensor) -> Tensor:
    """Greedy keep mask for a block in score order, given sup[i, j] (i < j only).

    keep[j] = not any(keep[i] and sup[i, j] for i < j) is a triangular system; iterating it from
    all-kept fixes one more dependency level per step, so it converges to the greedy answer in
    (longest suppression chain + 1) vectorized steps, usually a handful.
    """
    keep = torch.ones(sup.shape[0], dtype=torch.bool, device=sup.device)
    while True:
        new = ~(sup & keep[:, None]).any(0)
        if torch.equal(new, keep):
            return keep
        keep = new


def nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """Indices (int64) kept by greedy (class-aware if idxs is given) NMS, by decreasing score;
    see `detrun.ops.nms`. IoU in float32 (float64 for float64 boxes), torchvision's formula."""
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].to(torch.float64 if boxes.dtype == torch.float64 else torch.float32)
    cls = None if idxs is None else idxs[order]
    remaining = torch.arange(b.shape[0], device=b.device)
    kept = [remaining[:0]]
    while remaining.numel():
        blk, rest = remaining[:_BLOCK], remaining[_BLOCK:]
        c_blk = None if cls is None else cls[blk]
        sup = _suppresses(b[blk], b[blk], iou_threshold, c_blk, c_blk).triu(diagonal=1)
        keep = blk[_resolve_block(sup)]
        kept.append(keep)
        if rest.numel():
            c_keep, c_rest = (None, None) if cls is None else (cls[keep], cls[rest])
            rest = rest[~_suppresses(b[keep], b[rest], iou_threshold, c_keep, c_rest).any(0)]
        remaining = rest
    return order[torch.cat(kept)]
