"""Mask pasting kernel: bilinear resampling of (R, Mh, Mw) masks into their boxes on (R, H, W) images.

One program per (mask, tile of BLOCK_H x BLOCK_W pixels) computes each pixel's mask coordinates
(separable: one vector per tile row and column) and gathers the 4 bilinear taps from the small
mask, which stays in L1/L2. Every tile is written (zeros away from the box, with no loads), so the
output needs no separate memset and no host-side sync to size a launch grid per box.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._autotune import configs

# Tiles wide along image rows: coalesced stores.
_CONFIGS = configs([{"BLOCK_H": 16, "BLOCK_W": 64}, {"BLOCK_H": 8, "BLOCK_W": 128}, {"BLOCK_H": 32, "BLOCK_W": 64},
                    {"BLOCK_H": 16, "BLOCK_W": 32}], warps=[4, 2], interpreted={"BLOCK_H": 32, "BLOCK_W": 64})


@triton.jit
def _axis(pix, lo, hi, m):
    """Taps (c0, c1) and weights along one axis for pixel indices `pix` of a box spanning [lo, hi) and
    a mask of m cells: u = (pix + 0.5 - lo) / (hi - lo) * m - 0.5; taps outside [0, m) weigh 0."""
    extent = hi - lo
    ok = (extent > 0) & (extent < float("inf"))  # also rejects nan and infinite coordinates
    u = (pix.to(tl.float32) + 0.5 - lo) / tl.where(ok, extent, 1.0) * m - 0.5
    u = tl.minimum(tl.maximum(u, -2.0), m + 1.0)  # far-away pixels: keep the int conversion in range
    u0 = tl.floor(u)
    frac = u - u0
    c0 = u0.to(tl.int32)
    c1 = c0 + 1
    w0 = tl.where(ok, tl.where((c0 >= 0) & (c0 < m), 1.0 - frac, 0.0), 0.0)
    w1 = tl.where(ok, tl.where((c1 >= 0) & (c1 < m), frac, 0.0), 0.0)
    return c0, c1, w0, w1


@triton.autotune(configs=_CONFIGS, key=["MH", "MW"])
@triton.jit
def _paste_masks(masks_ptr, boxes_ptr, out_ptr, H, W, MH, MW, threshold, THRESHOLD: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    ys = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    xs = tl.program_id(2) * BLOCK_W + tl.arange(0, BLOCK_W)
    x1 = tl.load(boxes_ptr + r * 4 + 0)
    y1 = tl.load(boxes_ptr + r * 4 + 1)
    x2 = tl.load(boxes_ptr + r * 4 + 2)
    y2 = tl.load(boxes_ptr + r * 4 + 3)
    cy0, cy1, wy0, wy1 = _axis(ys, y1, y2, MH)
    cx0, cx1, wx0, wx1 = _axis(xs, x1, x2, MW)
    mask = masks_ptr + r * MH * MW
    row0 = mask + cy0[:, None] * MW
    row1 = mask + cy1[:, None] * MW
    m00 = (wy0[:, None] > 0) & (wx0[None, :] > 0)
    m01 = (wy0[:, None] > 0) & (wx1[None, :] > 0)
    m10 = (wy1[:, None] > 0) & (wx0[None, :] > 0)
    m11 = (wy1[:, None] > 0) & (wx1[None, :] > 0)
    top = (wx0[None, :] * tl.load(row0 + cx0[None, :], mask=m00, other=0.0).to(tl.float32)
           + wx1[None, :] * tl.load(row0 + cx1[None, :], mask=m01, other=0.0).to(tl.float32))
    bottom = (wx0[None, :] * tl.load(row1 + cx0[None, :], mask=m10, other=0.0).to(tl.float32)
              + wx1[None, :] * tl.load(row1 + cx1[None, :], mask=m11, other=0.0).to(tl.float32))
    val = wy0[:, None] * top + wy1[:, None] * bottom
    out = out_ptr + r * H * W + ys[:, None].to(tl.int64) * W + xs[None, :]
    inside = (ys < H)[:, None] & (xs < W)[None, :]
    if THRESHOLD:
        tl.store(out, val >= threshold, mask=inside)
    else:
        tl.store(out, val.to(out_ptr.dtype.element_ty), mask=inside)


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None) -> Tensor:
    """Masks (R, Mh, Mw) fp16/bf16/fp32 pasted into boxes (R, 4) on (H, W) images -> (R, H, W) bool
    (probability >= threshold) or masks' dtype if threshold is None. Semantics: `detrun.ops.paste_masks`."""
    r, mh, mw = masks.shape
    h, w = image_size
    out = torch.empty((r, h, w), dtype=torch.bool if threshold is not None else masks.dtype, device=masks.device)
    if out.numel() == 0:
        return out
    grid = lambda meta: (r, triton.cdiv(h, meta["BLOCK_H"]), triton.cdiv(w, meta["BLOCK_W"]))  # noqa: E731
    # Launched through `wrap_triton`: torch.compile traces it inside a `triton_op` (eager: a plain launch).
    torch.library.wrap_triton(_paste_masks)[grid](masks.contiguous(), boxes.float().contiguous(), out, h, w, mh, mw,
                                                  0.0 if threshold is None else float(threshold),
                                                  THRESHOLD=threshold is not None)
    return out
