"""Pure-PyTorch mask pasting: separable bilinear resampling restricted to each mask's window.

Bilinear sampling with zero padding is separable, so the pasted probabilities of one mask over a
window of rows x cols are Ay @ mask @ Ax^T, with Ay (rows, M) and Ax (cols, M) holding two
bilinear weights per pixel. Only the window of pixels a mask can reach is computed (its box plus
half a mask cell), masks are sorted by window size and processed in chunks, and each chunk is
written into the zero image with one indexed assignment.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Window pixels (masks x rows x cols) per chunk: 4M floats = 16 MB for values plus index math.
_CHUNK_ELEMENTS = 1 << 22


def _window(lo: Tensor, hi: Tensor, m: int, size: int) -> tuple[Tensor, Tensor]:
    """First pixel and pixel count (R,) int64 along one axis where a mask spanning [lo, hi) can be nonzero.

    A pixel is reached while its mask coordinate u is in (-1, m), i.e. its center lies within half a
    mask cell of the box; one pixel of slack on each side absorbs rounding.
    """
    half_cell = 0.5 * (hi - lo) / m
    first = torch.floor(lo - half_cell - 0.5).clamp(0, size)
    end = (torch.ceil(hi + half_cell - 0.5) + 1).clamp(0, size)
    ok = torch.isfinite(lo) & torch.isfinite(hi) & (hi > lo)
    first = torch.where(ok, first, torch.zeros_like(first)).long()
    count = torch.where(ok, end - first, torch.zeros_like(end)).clamp(min=0).long()
    return first, count


def _axis_weights(lo: Tensor, hi: Tensor, m: int, first: Tensor, n: int) -> Tensor:
    """(R, n, m) bilinear weights of mask cells for pixels first + [0, n) of boxes spanning [lo, hi)."""
    pix = (first[:, None] + torch.arange(n, device=lo.device)[None, :]).float()
    extent = (hi - lo)[:, None]
    ok = torch.isfinite(extent) & (extent > 0)
    u = torch.where(ok, (pix + 0.5 - lo[:, None]) / extent * m - 0.5, torch.full_like(pix, -2.0))
    u0 = torch.floor(u)
    frac = u - u0
    # Columns 0 and m+1 catch taps outside the mask (zero padding) and are dropped.
    w = torch.zeros((*pix.shape, m + 2), device=lo.device)
    w.scatter_add_(2, (u0 + 1).clamp(0, m + 1).long()[..., None], (1.0 - frac)[..., None])
    w.scatter_add_(2, (u0 + 2).clamp(0, m + 1).long()[..., None], frac[..., None])
    return w[..., 1 : m + 1]


def paste_masks_torch(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None
                      ) -> Tensor:
    """Masks (R, Mh, Mw) pasted into boxes (R, 4) float32 -> (R, H, W); see `detrun.ops.paste_masks`."""
    r, mh, mw = masks.shape
    h, w = image_size
    out = torch.zeros((r, h, w), dtype=torch.bool if threshold is not None else masks.dtype, device=masks.device)
    x_first, x_count = _window(boxes[:, 0], boxes[:, 2], mw, w)
    y_first, y_count = _window(boxes[:, 1], boxes[:, 3], mh, h)
    area = y_count * x_count
    order = torch.argsort(area)
    compute_dtype = torch.float64 if masks.dtype == torch.float64 else torch.float32
    sorted_area = area[order]
    start = int((sorted_area == 0).sum())  # masks with an empty window stay zero
    while start < r:
        # Sorted ascending: a chunk's padded size is its length times its last window's area.
        fits = torch.arange(1, r - start + 1, device=masks.device) * sorted_area[start:] <= _CHUNK_ELEMENTS
        end = start + max(int(fits.sum()), 1)
        idx = order[start:end]
        hc, wc = int(y_count[idx].max()), int(x_count[idx].max())
        # Shift windows to fit inside the image so that all hc x wc pixels are real and distinct;
        # pixels beyond a mask's own window just compute to zero.
        ys, xs = y_first[idx].clamp(max=h - hc), x_first[idx].clamp(max=w - wc)
        b = boxes[idx]
        ay = _axis_weights(b[:, 1], b[:, 3], mh, ys, hc).to(compute_dtype)
        ax = _axis_weights(b[:, 0], b[:, 2], mw, xs, wc).to(compute_dtype)
        vals = torch.bmm(torch.bmm(ay, masks[idx].to(compute_dtype)), ax.transpose(1, 2))
        rows = ys[:, None] + torch.arange(hc, device=masks.device)
        cols = xs[:, None] + torch.arange(wc, device=masks.device)
        out[idx[:, None, None], rows[:, :, None], cols[:, None, :]] = (
            vals >= threshold if threshold is not None else vals.to(masks.dtype))
        start = end
    return out
