"""Greedy non-maximum suppression, plain and class-aware, with torchvision's exact results.

`nms` / `batched_nms` check their arguments, pick the backend (`dispatch`) and call the
registered ops `torch.ops.detrun.nms` / `batched_nms` (`library`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import dispatch, library


def _check(boxes: Tensor, scores: Tensor, idxs: Tensor | None = None) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms: boxes must be (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: scores must be (N,) = ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if idxs is not None and idxs.shape != boxes.shape[:1]:
        raise ValueError(f"batched_nms: idxs must be (N,) = ({boxes.shape[0]},), got {tuple(idxs.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"nms: boxes must be floating, got {boxes.dtype}")


def _run(op: str, boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None,
         backend: str | None) -> Tensor:
    _check(boxes, scores, idxs)
    name = dispatch.select(op, boxes, backend)
    if library.use_triton_op(name):
        threshold = float(iou_threshold)
        return library.triton_ops().nms(boxes, scores, library.float32_threshold(threshold), idxs)
    backend_arg = library.op_backend(op, boxes, name, backend)
    if idxs is None:
        return torch.ops.detrun.nms(boxes, scores, float(iou_threshold), backend_arg)
    return torch.ops.detrun.batched_nms(boxes, scores, idxs, float(iou_threshold), backend_arg)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, *, backend: str | None = None) -> Tensor:
    """Greedy NMS: visit boxes by decreasing score, drop every later box whose IoU with a kept one is > threshold.

    Args:
        boxes: (N, 4) XYXY, absolute coordinates (fp16/bf16 are compared in float32).
        scores: (N,) scores.
        iou_threshold: discard boxes with IoU strictly greater than this.
        backend: None | "triton" | "torchvision" | "torch"; see `detrun.ops.dispatch`.

    Returns:
        int64 (K,) indices of kept boxes, by decreasing score (the triton and torch backends break
        score ties by lower index; torchvision's order for ties is unspecified).
    """
    return _run("nms", boxes, scores, iou_threshold, None, backend)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, *,
                backend: str | None = None) -> Tensor:
    """Class-aware NMS: boxes only suppress boxes with the same `idxs` value (e.g. class or image).

    The triton and torch backends only compare pairs within a class. torchvision's op on up to 1000
    CPU (25000 CUDA) boxes instead offsets each class's coordinates and runs one nms; the offsets
    round the coordinates, which can move an IoU across the threshold (example: tests/ops/test_nms.py).

    Args:
        boxes: (N, 4) XYXY; scores: (N,); idxs: (N,) integer category of each box.
        iou_threshold: discard boxes with IoU strictly greater than this.
        backend: None | "triton" | "torchvision" | "torch"; see `detrun.ops.dispatch`.

    Returns:
        int64 (K,) indices of kept boxes, by decreasing score.
    """
    return _run("batched_nms", boxes, scores, iou_threshold, idxs, backend)
