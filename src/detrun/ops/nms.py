"""Greedy non-maximum suppression, plain and class-aware, with torchvision's exact results."""
from __future__ import annotations

import torch
from torch import Tensor

from . import dispatch
from .nms_torch import nms_torch


def _check(boxes: Tensor, scores: Tensor, idxs: Tensor | None = None) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms: boxes must be (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: scores must be (N,) = ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if idxs is not None and idxs.shape != boxes.shape[:1]:
        raise ValueError(f"batched_nms: idxs must be (N,) = ({boxes.shape[0]},), got {tuple(idxs.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"nms: boxes must be floating, got {boxes.dtype}")


def _nms_torchvision(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    import torchvision

    # torchvision's CPU kernel has no half types; IoU in float32 is what its autocast does too.
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes, scores = boxes.float(), scores.float()
    if idxs is None:
        return torchvision.ops.nms(boxes, scores.to(boxes.dtype), iou_threshold)
    return torchvision.ops.batched_nms(boxes, scores.to(boxes.dtype), idxs, iou_threshold)


def _nms_triton(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    from ..kernels.nms import nms as nms_triton

    return nms_triton(boxes, scores, iou_threshold, idxs)


_IMPLS = {"triton": _nms_triton, "torchvision": _nms_torchvision, "torch": nms_torch}


def _float32_threshold(t: float) -> float:
    """Largest float32 <= t: for float32 IoUs v, `v > it` exactly when `v > t` in double precision,
    which is the comparison torchvision's kernels make."""
    t32 = torch.tensor(t, dtype=torch.float32)
    if t32.item() > t:
        t32 = torch.nextafter(t32, torch.tensor(float("-inf")))
    return t32.item()


def _run(op: str, boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None,
         backend: str | None) -> Tensor:
    _check(boxes, scores, idxs)
    name = dispatch.select(op, boxes, backend)
    threshold = float(iou_threshold)
    if name != "torchvision" and boxes.dtype != torch.float64:
        threshold = _float32_threshold(threshold)
    return _IMPLS[name](boxes, scores, threshold, idxs)


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
