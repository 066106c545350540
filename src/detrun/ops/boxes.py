"""Small box helpers on (N, 4) XYXY tensors in absolute pixel coordinates.

Elementwise PyTorch on any device and dtype (no backend choice: there is nothing to fuse).
"""
from __future__ import annotations

import torch
from torch import Tensor

_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_area(boxes: Tensor) -> Tensor:
    """Areas (N,) of boxes (N, 4) `(x1, y1, x2, y2)`; inverted boxes give negative areas, like torchvision."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter, union


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU (N, M) of boxes a (N, 4) and b (M, 4), XYXY; same formula as torchvision.ops.box_iou
    (two empty boxes give nan: 0/0)."""
    inter, union = _inter_union(a, b)
    return inter / union


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int] | Tensor) -> Tensor:
    """Boxes (..., 4) XYXY clamped to an image of `size` = (height, width): x to [0, W], y to [0, H].

    `size` may be a pair of numbers or an integer Tensor[2] (an exported model's image sizes are
    inputs, not constants); both give the same values."""
    if isinstance(size, Tensor):
        h, w = size.to(boxes.dtype).unbind()
        x = boxes[..., 0::2].clamp(min=0).minimum(w)
        y = boxes[..., 1::2].clamp(min=0).minimum(h)
    else:
        h, w = size
        x = boxes[..., 0::2].clamp(min=0, max=w)
        y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def nonempty_boxes(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    """Bool Tensor[N]: True where both width and height of boxes (N, 4) XYXY are > `threshold`
    (`Boxes.nonempty` on a plain tensor)."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64) of boxes (N, 4) XYXY whose width and height are both >= min_size (pixels)."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.where((wh >= min_size).all(dim=1))[0]


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes (..., 4) between "xyxy", "xywh" (x1, y1, w, h) and "cxcywh" (center x, y, w, h)."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in _FORMATS:
            raise ValueError(f"box format {fmt!r} is unknown; use one of {_FORMATS}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # (a, b, c, d) is now xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)
