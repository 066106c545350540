"""detrun's registered ops: `torch.ops.detrun.*`, seen by torch.export, torch.compile and ONNX export.

Public ops (each a `torch.library.custom_op` with a fake kernel; autograd where differentiable):

  detrun::roi_align(input, rois, spatial_scale, output_height, output_width, sampling_ratio,
                    aligned, backend="") -> Tensor                       differentiable w.r.t. input
  detrun::roi_align_backward(grad, rois, ..., batch, channels, height, width, backend) -> Tensor
  detrun::nms(boxes, scores, iou_threshold, backend="") -> Tensor         data-dependent length
  detrun::batched_nms(boxes, scores, idxs, iou_threshold, backend="") -> Tensor
  detrun::paste_masks(masks, boxes, height, width, threshold, backend="") -> Tensor

`backend` is a name from `dispatch.BACKENDS`, or "" for "the backend `dispatch.resolve` gives
for these tensors' device and dtype" (resolved once per process). The Python functions in
`detrun.ops` pass "" unless a backend was asked for by name or a gradient changes the choice,
so `torch.export` records "" and an exported program picks its backend where it runs. One path
skips the op: eager roi_align on the torch fallback with a gradient (CPU training) runs as plain
PyTorch under autograd, whose embedding_bag backward reuses the forward's sampling taps (the
op's registered backward, used under torch.compile, plans them again). The fake kernels give the output shapes (NMS: an
unbacked length) without running anything; `tests/ops/test_library.py` checks them against the
real kernels with `torch.library.opcheck`.

The Triton backend is also registered through `torch.library.triton_op` (`triton_ops()`:
detrun::roi_align_triton, detrun::nms_triton, detrun::paste_masks_triton, with launches through
`wrap_triton`), so that torch.compile traces into the kernels on GPUs; `detrun.ops` calls those
when Triton is the backend, except while exporting (exported graphs hold the public ops). They
are defined on first use: importing Triton is left to processes that use it.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
from torch import Tensor

from . import dispatch
from .nms_torch import nms_torch
from .paste_masks_torch import paste_masks_torch
from .roi_align_torch import roi_align_torch, roi_align_torch_backward


def backend_name(op: str, tensor: Tensor, backend: str) -> str:
    """The backend an op call runs on: `backend` checked against the tensor, or for "" the
    process's resolved choice for the tensor's device and dtype."""
    if backend:
        return dispatch._checked(op, tensor.device.type, tensor.dtype, backend)
    return dispatch.resolve(op, tensor.device, tensor.dtype)


def op_backend(op: str, tensor: Tensor, name: str, requested: str | None) -> str:
    """What the Python wrappers pass as the ops' `backend`: "" when `name` (what `dispatch.select`
    chose) is what the op would resolve by itself, else `name`."""
    if requested is None and name == dispatch.resolve(op, tensor.device, tensor.dtype):
        return ""
    return name


# --------------------------------------------------------------------------------------------
# roi_align


def _roi_align_torchvision(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                           sampling_ratio: int, aligned: bool) -> Tensor:
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    # torchvision wants boxes in the feature dtype; half-precision boxes would round pixel
    # coordinates, so half features are computed in float32 (as torchvision's autocast does).
    x = input if input.dtype in (torch.float32, torch.float64) else input.float()
    out = torch.ops.torchvision.roi_align(x, rois.to(x.dtype), spatial_scale, output_size[0], output_size[1],
                                          sampling_ratio, aligned)
    return out.to(input.dtype)


def _roi_align_torchvision_backward(grad: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                                    output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                                    aligned: bool) -> Tensor:
    import torchvision  # noqa: F401

    g = grad if grad.dtype in (torch.float32, torch.float64) else grad.float()
    n, c, h, w = input_shape
    out = torch.ops.torchvision._roi_align_backward(g.contiguous(), rois.to(g.dtype), spatial_scale, output_size[0],
                                                    output_size[1], n, c, h, w, sampling_ratio, aligned)
    return out.to(grad.dtype)


def _roi_align_triton(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                      sampling_ratio: int, aligned: bool) -> Tensor:
    from ..kernels.roi_align import roi_align_forward

    return roi_align_forward(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


def _roi_align_triton_backward(grad: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                               output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                               aligned: bool) -> Tensor:
    from ..kernels.roi_align import roi_align_backward

    return roi_align_backward(grad, rois, input_shape, grad.dtype, output_size, spatial_scale, sampling_ratio,
                              aligned)


def _roi_align_torch_backward(grad: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                              output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                              aligned: bool) -> Tensor:
    return roi_align_torch_backward(grad, rois, input_shape, grad.dtype, output_size, spatial_scale,
                                    sampling_ratio, aligned)


_ROI_ALIGN = {"triton": _roi_align_triton, "torchvision": _roi_align_torchvision, "torch": roi_align_torch}
_ROI_ALIGN_BACKWARD = {"triton": _roi_align_triton_backward, "torchvision": _roi_align_torchvision_backward,
                       "torch": _roi_align_torch_backward}


@torch.library.custom_op("detrun::roi_align", mutates_args=())
def roi_align(input: Tensor, rois: Tensor, spatial_scale: float, output_height: int, output_width: int,
              sampling_ratio: int, aligned: bool, backend: str = "") -> Tensor:
    """ROIAlign of input (N, C, H, W) over rois (K, 5) float32 [batch_idx, x1, y1, x2, y2] -> (K, C, oh, ow)
    in input's dtype; semantics of `detrun.ops.roi_align`."""
    name = backend_name("roi_align", input, backend)
    if rois.shape[0] == 0:  # a fresh tensor: an op's output may not alias its input
        return input.new_zeros((0, input.shape[1], output_height, output_width))
    out = _ROI_ALIGN[name](input, rois, (output_height, output_width), spatial_scale, sampling_ratio, aligned)
    return out.contiguous()


@roi_align.register_fake
def _(input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned, backend=""):
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "detrun::roi_align: rois must be (K, 5)")
    return input.new_empty((rois.shape[0], input.shape[1], output_height, output_width))


@torch.library.custom_op("detrun::roi_align_backward", mutates_args=())
def roi_align_backward(grad: Tensor, rois: Tensor, spatial_scale: float, output_height: int, output_width: int,
                       sampling_ratio: int, aligned: bool, batch: int, channels: int, height: int, width: int,
                       backend: str) -> Tensor:
    """Gradient w.r.t. the input (batch, channels, height, width) of `detrun::roi_align`, in grad's dtype."""
    shape = (batch, channels, height, width)
    if rois.shape[0] == 0:
        return grad.new_zeros(shape)
    out = _ROI_ALIGN_BACKWARD[backend](grad, rois, shape, (output_height, output_width), spatial_scale,
                                       sampling_ratio, aligned)
    return out.contiguous()


@roi_align_backward.register_fake
def _(grad, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned, batch, channels, height,
      width, backend):
    return grad.new_empty((batch, channels, height, width))


def _roi_align_setup_context(ctx, inputs, output) -> None:
    input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned, backend = inputs
    ctx.save_for_backward(rois)
    # The forward's own backend computes the backward too.
    ctx.args = (spatial_scale, output_height, output_width, sampling_ratio, aligned, *input.shape,
                backend_name("roi_align", input, backend))


def _roi_align_autograd_backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = torch.ops.detrun.roi_align_backward(grad, rois, *ctx.args)
    return grad_input, None, None, None, None, None, None, None


roi_align.register_autograd(_roi_align_autograd_backward, setup_context=_roi_align_setup_context)


# --------------------------------------------------------------------------------------------
# nms and batched_nms


def float32_threshold(t: float) -> float:
    """Largest float32 <= t: for float32 IoUs v, `v > it` exactly when `v > t` in double precision,
    which is the comparison torchvision's kernels make."""
    t32 = torch.tensor(t, dtype=torch.float32)
    if t32.item() > t:
        t32 = torch.nextafter(t32, torch.tensor(float("-inf")))
    return t32.item()


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


_NMS = {"triton": _nms_triton, "torchvision": _nms_torchvision, "torch": nms_torch}


def _run_nms(op: str, boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None,
             backend: str) -> Tensor:
    name = backend_name(op, boxes, backend)
    threshold = float(iou_threshold)
    if name != "torchvision" and boxes.dtype != torch.float64:
        threshold = float32_threshold(threshold)
    return _NMS[name](boxes, scores, threshold, idxs)


def _nms_fake(boxes: Tensor) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    torch._check(kept <= boxes.shape[0])
    return boxes.new_empty((kept,), dtype=torch.int64)


@torch.library.custom_op("detrun::nms", mutates_args=())
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, backend: str = "") -> Tensor:
    """Greedy NMS: int64 indices of the kept boxes (N, 4) by decreasing score; see `detrun.ops.nms`."""
    return _run_nms("nms", boxes, scores, iou_threshold, None, backend)


@nms.register_fake
def _(boxes, scores, iou_threshold, backend=""):
    return _nms_fake(boxes)


@torch.library.custom_op("detrun::batched_nms", mutates_args=())
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, backend: str = "") -> Tensor:
    """Class-aware NMS (boxes only suppress boxes of the same `idxs`); see `detrun.ops.batched_nms`."""
    return _run_nms("batched_nms", boxes, scores, iou_threshold, idxs, backend)


@batched_nms.register_fake
def _(boxes, scores, idxs, iou_threshold, backend=""):
    return _nms_fake(boxes)


# --------------------------------------------------------------------------------------------
# paste_masks


def _paste_masks_triton(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None
                        ) -> Tensor:
    from ..kernels.paste_masks import paste_masks as paste_masks_triton

    return paste_masks_triton(masks, boxes, image_size, threshold)


_PASTE_MASKS = {"triton": _paste_masks_triton, "torch": paste_masks_torch}


@torch.library.custom_op("detrun::paste_masks", mutates_args=())
def paste_masks(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float | None = 0.5,
                backend: str = "") -> Tensor:
    """Masks (R, Mh, Mw) resampled into boxes (R, 4) float32 on (height, width) images -> (R, H, W),
    bool (>= threshold) or masks' dtype for threshold None; see `detrun.ops.paste_masks`."""
    name = backend_name("paste_masks", masks, backend)
    return _PASTE_MASKS[name](masks, boxes, (height, width), threshold)


@paste_masks.register_fake
def _(masks, boxes, height, width, threshold=0.5, backend=""):
    dtype = torch.bool if threshold is not None else masks.dtype
    return masks.new_empty((masks.shape[0], height, width), dtype=dtype)


# --------------------------------------------------------------------------------------------
# The Triton backend as triton_ops (torch.compile traces into their kernels)


@functools.cache
def triton_ops() -> SimpleNamespace:
    """Define (once) and return the Triton backend's `triton_op`s: ``roi_align``, ``nms`` and
    ``paste_masks``, called like the public ops without `backend`. Imports `detrun.kernels`."""
    from torch.library import triton_op

    from ..kernels.nms import nms as nms_kernels
    from ..kernels.paste_masks import paste_masks as paste_masks_kernel
    from ..kernels.roi_align import roi_align_backward as roi_align_backward_kernel
    from ..kernels.roi_align import roi_align_forward as roi_align_forward_kernel

    @triton_op("detrun::roi_align_triton", mutates_args=())
    def roi_align_triton(input: Tensor, rois: Tensor, spatial_scale: float, output_height: int,
                         output_width: int, sampling_ratio: int, aligned: bool) -> Tensor:
        return roi_align_forward_kernel(input, rois, (output_height, output_width), spatial_scale, sampling_ratio,
                                        aligned)

    @triton_op("detrun::roi_align_triton_backward", mutates_args=())
    def roi_align_triton_backward(grad: Tensor, rois: Tensor, spatial_scale: float, output_height: int,
                                  output_width: int, sampling_ratio: int, aligned: bool, batch: int, channels: int,
                                  height: int, width: int) -> Tensor:
        return roi_align_backward_kernel(grad, rois, (batch, channels, height, width), grad.dtype,
                                         (output_height, output_width), spatial_scale, sampling_ratio, aligned)

    def setup_context(ctx, inputs, output):
        input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned = inputs
        ctx.save_for_backward(rois)
        ctx.args = (spatial_scale, output_height, output_width, sampling_ratio, aligned, *input.shape)

    def backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        return (torch.ops.detrun.roi_align_triton_backward(grad, rois, *ctx.args),
                None, None, None, None, None, None)

    roi_align_triton.register_autograd(backward, setup_context=setup_context)

    @triton_op("detrun::nms_triton", mutates_args=())
    def nms_triton(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None = None) -> Tensor:
        return nms_kernels(boxes, scores, iou_threshold, idxs)

    @triton_op("detrun::paste_masks_triton", mutates_args=())
    def paste_masks_triton(masks: Tensor, boxes: Tensor, height: int, width: int,
                           threshold: float | None = 0.5) -> Tensor:
        return paste_masks_kernel(masks, boxes, (height, width), threshold)

    return SimpleNamespace(roi_align=roi_align_triton, nms=nms_triton, paste_masks=paste_masks_triton)


def use_triton_op(name: str) -> bool:
    """Whether a wrapper calls the `triton_op` form: Triton is the backend and no export is
    tracing (exported graphs hold the backend-neutral public ops)."""
    return name == "triton" and not torch.compiler.is_exporting()
