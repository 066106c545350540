"""ROIAlign forward and backward kernels (torchvision's sampling rules) and their launchers.

Layout: one program per (box, block of channels, block of output bins) holds a [bins, channels]
tile in float32 and loops over the box's sample grid (adaptive per box), loading the 4 bilinear
taps of every bin at once. The launcher passes the map channels-last, so each tap load reads
BLOCK_C contiguous values (coalesced); any strides work. The backward scatters with atomic adds
into a float32 buffer (the autograd wiring is `detrun::roi_align`'s, in `detrun.ops.library`).
Tiles of 1024 elements compile without register spills at 4 warps and of 2048 at 8 warps
(checked with ptxas for sm_80); autotuning picks among them per (C, OH, OW).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._autotune import configs

_CONFIGS = configs([{"BLOCK_B": b, "BLOCK_C": c} for b, c in ((32, 32), (64, 16), (16, 64), (32, 64), (64, 32))],
                   warps=[4, 8], interpreted={"BLOCK_B": 256, "BLOCK_C": 64})


@triton.jit
def _tile(rois_ptr, C, spatial_scale, offset, sampling_ratio, OH: tl.constexpr, OW: tl.constexpr,
          ALIGNED: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's box geometry (torchvision's expressions) and its [bins, channels] tile:
    (batch index, box start x/y, bin size w/h, samples per bin w/h, bin row/col (float) [BLOCK_B],
    channels [BLOCK_C], tile mask, tile offsets into the (K, C, OH, OW) output)."""
    k = tl.program_id(0)
    roi = rois_ptr + k * 5
    b = tl.load(roi).to(tl.int64)
    x0 = tl.load(roi + 1) * spatial_scale - offset
    y0 = tl.load(roi + 2) * spatial_scale - offset
    rw = tl.load(roi + 3) * spatial_scale - offset - x0
    rh = tl.load(roi + 4) * spatial_scale - offset - y0
    if not ALIGNED:  # the original op forces boxes to at least one cell
        rw = tl.maximum(rw, 1.0)
        rh = tl.maximum(rh, 1.0)
    gw = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(rw / OW).to(tl.int32))
    gh = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(rh / OH).to(tl.int32))
    bins = tl.program_id(2) * BLOCK_B + tl.arange(0, BLOCK_B)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    tile_mask = (bins < OH * OW)[:, None] & (cs < C)[None, :]
    tile = k.to(tl.int64) * C * OH * OW + cs[None, :] * (OH * OW) + bins[:, None]
    ph = (bins // OW).to(tl.float32)
    pw = (bins % OW).to(tl.float32)
    return b, x0, y0, rw / OW, rh / OH, gw, gh, ph, pw, cs, tile_mask, tile


@triton.jit
def _axis(start, bin_index, bin_size, grid, i, size, stride):
    """Sample i of `grid` per bin along one axis, for every bin: the offsets ([BLOCK_B, 1], elements)
    of its low and high bilinear taps and their weights [BLOCK_B]; weights are 0 where torchvision
    skips the sample (coordinate < -1 or > size)."""
    p = start + bin_index * bin_size + (i + 0.5) * bin_size / grid
    valid = (p >= -1.0) & (p <= size)
    p = tl.maximum(p, 0.0)
    low = tl.minimum(p.to(tl.int32), size - 1)
    at_end = low >= size - 1
    high = tl.where(at_end, low, low + 1)
    frac = tl.where(at_end, 0.0, p - low.to(tl.float32))
    return ((low.to(tl.int64) * stride)[:, None], (high.to(tl.int64) * stride)[:, None],
            tl.where(valid, 1.0 - frac, 0.0), tl.where(valid, frac, 0.0))


@triton.jit
def _roi_align(src_ptr, rois_ptr, dst_ptr, C, H, W, stride_n, stride_c, stride_h, stride_w,
               spatial_scale, offset, sampling_ratio,
               OH: tl.constexpr, OW: tl.constexpr, ALIGNED: tl.constexpr, BACKWARD: tl.constexpr,
               BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    """Forward: src = features (strides given), dst = output (K, C, OH, OW).
    Backward: src = output gradient (K, C, OH, OW), dst = float32 feature gradient (strides given)."""
    b, x0, y0, bin_w, bin_h, gw, gh, ph, pw, cs, tile_mask, tile = _tile(
        rois_ptr, C, spatial_scale, offset, sampling_ratio, OH, OW, ALIGNED, BLOCK_B, BLOCK_C)
    inv_count = 1.0 / tl.maximum(gh * gw, 1).to(tl.float32)
    if BACKWARD:
        g = tl.load(src_ptr + tile, mask=tile_mask, other=0.0).to(tl.float32) * inv_count
        base = dst_ptr + b * stride_n + cs[None, :].to(tl.int64) * stride_c
    else:
        base = src_ptr + b * stride_n + cs[None, :].to(tl.int64) * stride_c
    acc = tl.zeros([BLOCK_B, BLOCK_C], dtype=tl.float32)
    for iy in range(0, gh):
        yl, yh, wyl, wyh = _axis(y0, ph, bin_h, gh, iy, H, stride_h)
        for ix in range(0, gw):
            xl, xh, wxl, wxh = _axis(x0, pw, bin_w, gw, ix, W, stride_w)
            m = tile_mask & ((wyl + wyh) * (wxl + wxh) > 0)[:, None]
            if BACKWARD:
                tl.atomic_add(base + yl + xl, (wyl * wxl)[:, None] * g, mask=m)
                tl.atomic_add(base + yl + xh, (wyl * wxh)[:, None] * g, mask=m)
                tl.atomic_add(base + yh + xl, (wyh * wxl)[:, None] * g, mask=m)
                tl.atomic_add(base + yh + xh, (wyh * wxh)[:, None] * g, mask=m)
            else:
                acc += (wyl * wxl)[:, None] * tl.load(base + yl + xl, mask=m, other=0.0).to(tl.float32)
                acc += (wyl * wxh)[:, None] * tl.load(base + yl + xh, mask=m, other=0.0).to(tl.float32)
                acc += (wyh * wxl)[:, None] * tl.load(base + yh + xl, mask=m, other=0.0).to(tl.float32)
                acc += (wyh * wxh)[:, None] * tl.load(base + yh + xh, mask=m, other=0.0).to(tl.float32)
    if not BACKWARD:
        tl.store(dst_ptr + tile, (acc * inv_count).to(dst_ptr.dtype.element_ty), mask=tile_mask)


_roi_align_fwd = triton.autotune(configs=_CONFIGS, key=["C", "OH", "OW"])(_roi_align)
# Autotuning runs the kernel repeatedly: the accumulated gradient is reset before each run.
_roi_align_bwd = triton.autotune(configs=_CONFIGS, key=["C", "OH", "OW"], reset_to_zero=["dst_ptr"])(_roi_align)


def _launch(kernel, src: Tensor, rois: Tensor, dst: Tensor, fmap: Tensor, output_size: tuple[int, int],
            spatial_scale: float, sampling_ratio: int, aligned: bool) -> None:
    """Run `kernel` over all boxes; `fmap` is the (N, C, H, W) tensor whose strides the kernel indexes.
    Launched through `wrap_triton`, so that torch.compile traces the launch inside a `triton_op`
    (in eager mode it is the plain launch)."""
    n, c, h, w = fmap.shape
    oh, ow = output_size

    def grid(meta: dict) -> tuple[int, int, int]:
        return rois.shape[0], triton.cdiv(c, meta["BLOCK_C"]), triton.cdiv(oh * ow, meta["BLOCK_B"])

    torch.library.wrap_triton(kernel)[grid](
        src, rois, dst, c, h, w, *fmap.stride(), spatial_scale, 0.5 if aligned else 0.0, sampling_ratio,
        OH=oh, OW=ow, ALIGNED=aligned, BACKWARD=kernel is _roi_align_bwd)


def roi_align_forward(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                      sampling_ratio: int, aligned: bool) -> Tensor:
    """ROIAlign of input (N, C, H, W) fp16/bf16/fp32 over rois (K, 5) float32 -> (K, C, oh, ow) in
    input's dtype, accumulated in float32. Semantics: `detrun.ops.roi_align`."""
    # Channels-last makes each tap a contiguous run of channels (no copy if already so).
    x = input.contiguous(memory_format=torch.channels_last)
    rois = rois.float().contiguous()
    out = torch.empty((rois.shape[0], x.shape[1], *output_size), dtype=input.dtype, device=input.device)
    if rois.shape[0]:
        _launch(_roi_align_fwd, x, rois, out, x, output_size, spatial_scale, sampling_ratio, aligned)
    return out


def roi_align_backward(grad_out: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                       input_dtype: torch.dtype, output_size: tuple[int, int], spatial_scale: float,
                       sampling_ratio: int, aligned: bool) -> Tensor:
    """Gradient w.r.t. the input (N, C, H, W) of `roi_align_forward`, from the output gradient
    (K, C, oh, ow): atomic adds into a float32 buffer, returned in `input_dtype`."""
    rois = rois.float().contiguous()
    grad = torch.zeros(input_shape, dtype=torch.float32, device=grad_out.device).contiguous(
        memory_format=torch.channels_last)
    if rois.shape[0]:
        _launch(_roi_align_bwd, grad_out.contiguous(), rois, grad, grad, output_size, spatial_scale,
                sampling_ratio, aligned)
    return grad.to(input_dtype)
