"""ROIAlign (Mask R-CNN, He et al. 2017): bilinear pooling of box regions into a fixed grid.

`roi_align` checks its arguments, picks the backend (`dispatch`) and calls the registered op
`torch.ops.detrun.roi_align` (`library`), which carries its fake kernel and autograd.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import dispatch, library
from .roi_align_torch import roi_align_torch


def _as_rois(boxes: Tensor | list[Tensor] | tuple[Tensor, ...], input: Tensor) -> Tensor:
    """(K, 5) float32 `[batch_idx, x1, y1, x2, y2]` on input's device from either accepted form."""
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if b.dim() != 2 or b.shape[1] != 4:
                raise ValueError(f"roi_align: boxes[{i}] must be (Ki, 4) XYXY, got {tuple(b.shape)}")
        if len(boxes) == 0:
            return torch.zeros((0, 5), dtype=torch.float32, device=input.device)
        idx = torch.cat([torch.full((len(b), 1), i, dtype=torch.float32, device=b.device)
                         for i, b in enumerate(boxes)])
        rois = torch.cat([idx, torch.cat(list(boxes)).float()], dim=1)
    else:
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError("roi_align: boxes must be a (K, 5) tensor [batch_idx, x1, y1, x2, y2] or a "
                             f"list of (Ki, 4) tensors, got shape {tuple(boxes.shape)}")
        rois = boxes.float()
    return rois.to(input.device)


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    oh, ow = size
    return int(oh), int(ow)


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False, *,
              backend: str | None = None) -> Tensor:
    """Average of bilinear samples over each output bin of each box; same semantics as torchvision.ops.roi_align.

    Args:
        input: features (N, C, H, W), float16/bfloat16/float32/float64, any strides.
        boxes: (K, 5) `[batch_idx, x1, y1, x2, y2]` or a list of N tensors (Ki, 4) `[x1, y1, x2, y2]`,
            in input-image pixels (multiplied by `spatial_scale` to reach feature cells). Used as float32
            whatever the feature dtype; no gradient flows to boxes.
        output_size: (oh, ow) or an int for both.
        spatial_scale: feature cells per image pixel (1/stride, e.g. 0.25 for stride 4).
        sampling_ratio: samples per bin along each axis; <= 0 means adaptive, ceil(roi_size / output_size)
            per box and axis.
        aligned: False reproduces the original op (box corners at cell corners, boxes at least 1x1 cell);
            True shifts by -0.5 cell so that pixel centers line up (Detectron2's ROIAlignV2).
        backend: None | "triton" | "torchvision" | "torch"; see `detrun.ops.dispatch`.

    Returns:
        (K, C, oh, ow) in input's dtype; differentiable w.r.t. `input`.
    """
    if input.dim() != 4:
        raise ValueError(f"roi_align: input must be (N, C, H, W), got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"roi_align: input must be a floating tensor, got {input.dtype}")
    rois = _as_rois(boxes, input)
    name = dispatch.select("roi_align", input, backend)
    oh, ow = _pair(output_size)
    args = (input, rois, float(spatial_scale), oh, ow, int(sampling_ratio), bool(aligned))
    if library.use_triton_op(name):
        return library.triton_ops().roi_align(*args)
    if name == "torch" and dispatch.needs_grad(input) and not torch.compiler.is_compiling():
        # Eager training on the torch fallback (CPU training's choice): plain PyTorch ops under
        # autograd, whose embedding_bag backward reuses the forward's taps; the registered
        # backward would plan them again (1.4x the op's forward + backward time).
        return roi_align_torch(input, rois, (oh, ow), *args[2:3], *args[5:])
    return torch.ops.detrun.roi_align(*args, library.op_backend("roi_align", input, name, backend))


class RoIAlign(nn.Module):
    """Module form of `roi_align` with fixed parameters: forward(input, boxes) -> (K, C, oh, ow)."""

    def __init__(self, *, output_size: int | tuple[int, int], spatial_scale: float, sampling_ratio: int = -1,
                 aligned: bool = False, backend: str | None = None):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.backend = backend

    def forward(self, input: Tensor, boxes: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, boxes, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned,
                         backend=self.backend)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
