"""ROIAlign forward and backward kernels (torchvision's sampling rules) and their autograd launcher.

Layout: one program per (box, block of channels, block of output bins) holds a [bins, channels]
tile in float32 and loops over the box's sample grid (adaptive per box), loading the 4 bilinear
taps of every bin at once. The launcher passes the map channels-last, so each tap load reads
BLOCK_C contiguous values (coalesced); any strides work. The backward scatters with atomic adds
into a float32 buffer. Tiles of 1024 elements compile without register spills at 4 warps and of
2048 at 8 warps (checked with ptxas for sm_80); autotuning picks among them per (C, OH, OW).
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
def _roi_geometry(rois_ptr, k, spatial_scale, offset, sampling_ratio, OH: tl.constexpr, OW: tl.constexpr,
                  ALIGNED: tl.constexpr):
    """Batch index, box start, bin size and samples per bin of box k (torchvision's expressions)."""
    roi = rois_ptr + k * 5
    b = tl.load(roi).to(tl.int64)
    x0 = tl.load(roi + 1) * spatial_scale - offset
    y0 = tl.load(roi + 2) * spatial_scale - offset
    rw = tl.load(roi + 3) * spatial_scale - offset - x0
    rh = tl.load(roi + 4) * spatial_scale - offset - y0
    if not ALIGNED:  # the original op forces boxes to at least one cell
        rw = tl.maximum(rw, 1.0)
        rh = tl.maximum(rh, 1.0)
    bin_w = rw / OW
    bin_h = rh / OH
    gw = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(rw / OW).to(tl.int32))
    gh = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(rh / OH).to(tl.int32))
    return b, x0, y0, bin_w, bin_h, gw, gh


@triton.jit
def _taps(p, size):
    """Bilinear taps along one axis for sample coordinates p: (low, high, w_low, w_high); weights are
    0 where torchvision skips the sample (p < -1 or p > size)."""
    valid = (p >= -1.0) & (p <= size)
    p = tl.maximum(p, 0.0)
    low = tl.minimum(p.to(tl.int32), size - 1)
    at_end = low >= size - 1
    high = tl.where(at_end, low, low + 1)
    frac = tl.where(at_end, 0.0, p - low.to(tl.float32))
    return low, high, tl.where(valid, 1.0 - frac, 0.0), tl.where(valid, frac, 0.0)


@triton.autotune(configs=_CONFIGS, key=["C", "OH", "OW"])
@triton.jit
def _roi_align_fwd(x_ptr, rois_ptr, out_ptr, C, H, W, stride_n, stride_c, stride_h, stride_w,
                   spatial_scale, offset, sampling_ratio,
                   OH: tl.constexpr, OW: tl.constexpr, ALIGNED: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    k = tl.program_id(0)
    b, x0, y0, bin_w, bin_h, gw, gh = _roi_geometry(rois_ptr, k, spatial_scale, offset, sampling_ratio,
                                                    OH, OW, ALIGNED)
    bins = tl.program_id(2) * BLOCK_B + tl.arange(0, BLOCK_B)
    ph = (bins // OW).to(tl.float32)
    pw = (bins % OW).to(tl.float32)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    tile_mask = (bins < OH * OW)[:, None] & (cs < C)[None, :]
    base = x_ptr + b * stride_n + cs[None, :].to(tl.int64) * stride_c
    acc = tl.zeros([BLOCK_B, BLOCK_C], dtype=tl.float32)
    for iy in range(0, gh):
        y = y0 + ph * bin_h + (iy + 0.5) * bin_h / gh
        yl, yh, wyl, wyh = _taps(y, H)
        row_l = base + (yl.to(tl.int64) * stride_h)[:, None]
        row_h = base + (yh.to(tl.int64) * stride_h)[:, None]
        for ix in range(0, gw):
            x = x0 + pw * bin_w + (ix + 0.5) * bin_w / gw
            xl, xh, wxl, wxh = _taps(x, W)
            col_l = (xl.to(tl.int64) * stride_w)[:, None]
            col_h = (xh.to(tl.int64) * stride_w)[:, None]
            m = tile_mask & ((wyl + wyh) * (wxl + wxh) > 0)[:, None]
            v = (wyl * wxl)[:, None] * tl.load(row_l + col_l, mask=m, other=0.0).to(tl.float32)
            v += (wyl * wxh)[:, None] * tl.load(row_l + col_h, mask=m, other=0.0).to(tl.float32)
            v += (wyh * wxl)[:, None] * tl.load(row_h + col_l, mask=m, other=0.0).to(tl.float32)
            v += (wyh * wxh)[:, None] * tl.load(row_h + col_h, mask=m, other=0.0).to(tl.float32)
            acc += v
    acc = acc / tl.maximum(gh * gw, 1).to(tl.float32)
    out = out_ptr + k.to(tl.int64) * C * OH * OW + cs[None, :] * (OH * OW) + bins[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=tile_mask)


@triton.autotune(configs=_CONFIGS, key=["C", "OH", "OW"], reset_to_zero=["grad_ptr"])
@triton.jit
def _roi_align_bwd(grad_out_ptr, rois_ptr, grad_ptr, C, H, W, stride_n, stride_c, stride_h, stride_w,
                   spatial_scale, offset, sampling_ratio,
                   OH: tl.constexpr, OW: tl.constexpr, ALIGNED: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    k = tl.program_id(0)
    b, x0, y0, bin_w, bin_h, gw, gh = _roi_geometry(rois_ptr, k, spatial_scale, offset, sampling_ratio,
                                                    OH, OW, ALIGNED)
    bins = tl.program_id(2) * BLOCK_B + tl.arange(0, BLOCK_B)
    ph = (bins // OW).to(tl.float32)
    pw = (bins % OW).to(tl.float32)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    tile_mask = (bins < OH * OW)[:, None] & (cs < C)[None, :]
    g_ptr = grad_out_ptr + k.to(tl.int64) * C * OH * OW + cs[None, :] * (OH * OW) + bins[:, None]
    g = tl.load(g_ptr, mask=tile_mask, other=0.0).to(tl.float32) / tl.maximum(gh * gw, 1).to(tl.float32)
    base = grad_ptr + b * stride_n + cs[None, :].to(tl.int64) * stride_c
    for iy in range(0, gh):
        y = y0 + ph * bin_h + (iy + 0.5) * bin_h / gh
        yl, yh, wyl, wyh = _taps(y, H)
        row_l = base + (yl.to(tl.int64) * stride_h)[:, None]
        row_h = base + (yh.to(tl.int64) * stride_h)[:, None]
        for ix in range(0, gw):
            x = x0 + pw * bin_w + (ix + 0.5) * bin_w / gw
            xl, xh, wxl, wxh = _taps(x, W)
            col_l = (xl.to(tl.int64) * stride_w)[:, None]
            col_h = (xh.to(tl.int64) * stride_w)[:, None]
            m = tile_mask & ((wyl + wyh) * (wxl + wxh) > 0)[:, None]
            tl.atomic_add(row_l + col_l, (wyl * wxl)[:, None] * g, mask=m)
            tl.atomic_add(row_l + col_h, (wyl * wxh)[:, None] * g, mask=m)
            tl.atomic_add(row_h + col_l, (wyh * wxl)[:, None] * g, mask=m)
            tl.atomic_add(row_h + col_h, (wyh * wxh)[:, None] * g, mask=m)


def _launch(kernel, src: Tensor, rois: Tensor, dst: Tensor, fmap: Tensor, output_size: tuple[int, int],
            spatial_scale: float, sampling_ratio: int, aligned: bool) -> None:
    """Run `kernel` over all boxes; `fmap` is the (N, C, H, W) tensor whose strides the kernel indexes."""
    n, c, h, w = fmap.shape
    oh, ow = output_size
    def grid(meta: dict) -> tuple[int, int, int]:
        return rois.shape[0], triton.cdiv(c, meta["BLOCK_C"]), triton.cdiv(oh * ow, meta["BLOCK_B"])

    kernel[grid](src, rois, dst, c, h, w, *fmap.stride(), spatial_scale, 0.5 if aligned else 0.0, sampling_ratio,
                 OH=oh, OW=ow, ALIGNED=aligned)


class _RoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        # Channels-last makes each tap a contiguous run of channels (no copy if already so).
        x = input.contiguous(memory_format=torch.channels_last)
        rois = rois.detach().float().contiguous()
        out = torch.empty((rois.shape[0], x.shape[1], *output_size), dtype=input.dtype, device=input.device)
        if rois.shape[0]:
            _launch(_roi_align_fwd, x, rois, out, x, output_size, spatial_scale, sampling_ratio, aligned)
        ctx.save_for_backward(rois)
        ctx.meta = (input.shape, input.dtype, output_size, spatial_scale, sampling_ratio, aligned)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (rois,) = ctx.saved_tensors
        shape, dtype, output_size, spatial_scale, sampling_ratio, aligned = ctx.meta
        grad = torch.zeros(shape, dtype=torch.float32, device=grad_out.device).contiguous(
            memory_format=torch.channels_last)
        if rois.shape[0]:
            _launch(_roi_align_bwd, grad_out.contiguous(), rois, grad, grad, output_size, spatial_scale,
                    sampling_ratio, aligned)
        return grad.to(dtype), None, None, None, None, None


def roi_align(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """ROIAlign of input (N, C, H, W) fp16/bf16/fp32 over rois (K, 5) -> (K, C, oh, ow) in input's dtype,
    accumulated in float32; differentiable w.r.t. input. Semantics: `detrun.ops.roi_align`."""
    return _RoIAlign.apply(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
