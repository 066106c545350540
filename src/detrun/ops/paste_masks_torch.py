"""Pure-PyTorch mask pasting: separable bilinear resampling restricted to each mask's window.

Bilinear sampling with zero padding is separable. Per mask, first resample its columns for every
pixel column of its window: U = mask @ Ax^T (M rows x window width; Ax holds two bilinear weights
per pixel column). Then every image row of the window is the weighted sum of two rows of U, which
is exactly `F.embedding_bag` (a fused C++ gather + weighted sum) over the stacked U rows of all
masks of a chunk. So rows are never padded: masks are sorted by window width and chunked, only
widths are padded to the chunk's widest window, and every output row lands in the zero image as
one contiguous run with one indexed assignment per chunk.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Window pixels (rows x padded width) per chunk: 1M floats = 4 MB.
_CHUNK_ELEMENTS = 1 << 20


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


def _taps(pix: Tensor, lo: Tensor, hi: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """Bilinear taps of mask cells for pixel indices `pix` (any shape, lo/hi broadcast to it):
    cells (..., 2) int64 clamped into [0, m) and weights (..., 2), 0 for cells outside the mask
    (zero padding) or degenerate boxes. Mask coordinate u = (pix + 0.5 - lo) / (hi - lo) * m - 0.5."""
    extent = hi - lo
    ok = torch.isfinite(extent) & (extent > 0)
    u = torch.where(ok, (pix + 0.5 - lo) / extent * m - 0.5, torch.full_like(pix, -2.0))
    u0 = torch.floor(u)
    cells = torch.stack((u0, u0 + 1), -1)
    weights = torch.stack((1.0 - (u - u0), u - u0), -1)
    inside = (cells >= 0) & (cells < m)
    return cells.clamp(0, m - 1).long(), torch.where(inside, weights, torch.zeros_like(weights))


def _col_weights(lo: Tensor, hi: Tensor, m: int, first: Tensor, n: int) -> Tensor:
    """(K, n, m) bilinear weights of mask columns for pixel columns first + [0, n) of each box."""
    pix = (first[:, None] + torch.arange(n, device=lo.device)).float()
    cells, weights = _taps(pix, lo[:, None], hi[:, None], m)
    return torch.zeros((*pix.shape, m), device=lo.device).scatter_add_(2, cells, weights)


def _chunks(width: Tensor, rows: Tensor, budget: int) -> list[tuple[int, int, int]]:
    """(start, end, cols) runs over masks sorted by ascending window width: each run's rows x its
    widest window stay within `budget` (at least one mask per run)."""
    chunks, start, n = [], 0, width.numel()
    cum_rows = torch.cumsum(rows, 0)
    while start < n:
        before = cum_rows[start - 1] if start else 0
        end = start + max(int(((cum_rows[start:] - before) * width[start:] <= budget).sum()), 1)
        chunks.append((start, end, int(width[end - 1])))
        start = end
    return chunks


def paste_masks_torch(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None
                      ) -> Tensor:
    """Masks (R, Mh, Mw) pasted into boxes (R, 4) float32 -> (R, H, W); see `detrun.ops.paste_masks`."""
    r, mh, mw = masks.shape
    h, w = image_size
    dev = masks.device
    out = torch.zeros((r, h, w), dtype=torch.bool if threshold is not None else masks.dtype, device=dev)
    x_first, x_count = _window(boxes[:, 0], boxes[:, 2], mw, w)
    y_first, y_count = _window(boxes[:, 1], boxes[:, 3], mh, h)
    order = torch.argsort(x_count)
    order = order[(x_count * y_count)[order] > 0]
    if order.numel() == 0:
        return out
    x_first, x_count, y_first, y_count = x_first[order], x_count[order], y_first[order], y_count[order]
    b = boxes[order]
    compute_dtype = torch.float64 if masks.dtype == torch.float64 else torch.float32
    # Every window row of every mask (ragged, in mask order): its image row and its two mask-row taps.
    row_start = torch.cumsum(y_count, 0) - y_count
    row_mask = torch.repeat_interleave(torch.arange(order.numel(), device=dev), y_count)
    row_y = y_first[row_mask] + torch.arange(row_mask.numel(), device=dev) - row_start[row_mask]
    row_cells, row_weights = _taps(row_y.float(), b[row_mask, 1], b[row_mask, 3], mh)
    row_weights = row_weights.to(compute_dtype)
    sorted_masks = masks[order].to(compute_dtype)
    chunks = _chunks(x_count, y_count, _CHUNK_ELEMENTS)
    # One buffer for every chunk's thresholded rows: fresh large allocations cost page faults.
    mask_buf = torch.empty(max(int(y_count[s:e].sum()) * wc for s, e, wc in chunks), dtype=torch.bool, device=dev)
    for start, end, wc in chunks:
        # Windows shifted to fit inside the image: all wc columns are real and distinct, and
        # columns beyond a mask's own window just compute to zero.
        xs = x_first[start:end].clamp(max=w - wc)
        ax = _col_weights(b[start:end, 0], b[start:end, 2], mw, xs, wc).to(compute_dtype)
        # Sampled in compute_dtype, as documented: autocast would run this bmm in bf16/fp16 and
        # hand embedding_bag a table of another dtype than its weights.
        with torch.autocast(dev.type, enabled=False):
            table = torch.bmm(sorted_masks[start:end], ax.transpose(1, 2)).view(-1, wc)  # (k * Mh, wc)
        r0, r1 = int(row_start[start]), int(row_start[end - 1] + y_count[end - 1])
        local = row_mask[r0:r1] - start
        vals = F.embedding_bag(local[:, None] * mh + row_cells[r0:r1], table,
                               per_sample_weights=row_weights[r0:r1], mode="sum")
        if threshold is not None:
            vals = torch.ge(vals, threshold, out=mask_buf[: vals.numel()].view(vals.shape))
        # Each window row is one contiguous run of wc pixels: view the image rows as all their
        # wc-long runs (row, first column) and copy every window row in one indexed assignment.
        runs = out.view(r * h, w).unfold(1, wc, 1)
        runs[order[row_mask[r0:r1]] * h + row_y[r0:r1], xs[local]] = vals.to(out.dtype)
    return out
