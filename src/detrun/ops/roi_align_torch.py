"""Pure-PyTorch ROIAlign with torchvision's exact sampling rules, as gathers and batched matmuls.

Bilinear sampling and the per-bin average are separable: for one box and channel,
    out[ph, pw] = sum_{y, x} Ay[ph, y] * F[y, x] * Ax[pw, x]
where Ay (oh, rows) holds, for each output row, the bilinear row weights of all its samples
(/ samples per bin), and Ax likewise for columns. So each box needs only the feature rows/columns
its samples touch: we gather that (rows x cols) patch of channel vectors from a channels-last copy
of the map (one contiguous C-vector per cell) and contract it with two small matmuls. Per box and
axis the touched cells are stored either as the contiguous span they lie in (small boxes, dense
sampling: every cell once) or as the raw tap list (large boxes with few samples), whichever is
shorter. Boxes are sorted by patch size and processed in chunks of bounded memory.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Elements (boxes x rows x cols x channels) gathered per chunk: 4M floats = 16 MB keeps the
# patch, its float32 copy and the matmul outputs in cache-friendly, bounded memory.
_CHUNK_ELEMENTS = 1 << 22


def _axis_sampling(start: Tensor, length: Tensor, n_out: int, grid: Tensor, size: int
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Sampling along one axis for K boxes.

    start, length: (K,) box start and extent in feature cells (float32); grid: (K,) samples per bin;
    size: feature map extent. Returns weights (K, n_out, L) over the gathered cells,
    cells (K, L) int64 in [0, size), and used (K,) int64 = number of meaningful columns of L.
    """
    k = start.shape[0]
    g_max = max(int(grid.max()), 1) if k else 1
    dev = start.device
    bin_size = (length / n_out)[:, None, None]
    o = torch.arange(n_out, device=dev, dtype=torch.float32)[None, :, None]
    i = torch.arange(g_max, device=dev, dtype=torch.float32)[None, None, :]
    g = grid[:, None, None]
    # Same float32 expression order as torchvision's kernels, so floor() agrees at cell borders.
    p = start[:, None, None] + o * bin_size + (i + 0.5) * bin_size / g.clamp(min=1).float()
    valid = (p >= -1.0) & (p <= size) & (i < g)
    p = p.clamp(min=0.0)
    low = p.floor().clamp(max=size - 1).long()
    at_end = low >= size - 1
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(p), p - low.float())
    inv_g = 1.0 / g.clamp(min=1).float()
    zero = torch.zeros_like(p)
    w = torch.stack((torch.where(valid, (1.0 - frac) * inv_g, zero), torch.where(valid, frac * inv_g, zero)), -1)
    cells = torch.stack((low, high), -1)  # (K, n_out, G, 2)
    valid = valid[..., None].expand_as(cells)

    big = torch.iinfo(torch.int64).max
    lo = torch.where(valid, cells, big).flatten(1).amin(1)
    hi = torch.where(valid, cells, -1).flatten(1).amax(1)
    span = (hi - lo + 1).clamp(min=0)
    n_taps = n_out * 2 * grid
    as_span = (span < n_taps)[:, None, None, None]
    # Column of each tap: its offset in the span, or its position in the compact tap list.
    tap_pos = (o.long()[..., None] * 2 * g[..., None] + 2 * i.long()[..., None]
               + torch.arange(2, device=dev)[None, None, None, :])
    col = torch.where(as_span, cells - lo[:, None, None, None], tap_pos)
    used = torch.where(as_span[:, 0, 0, 0], span, n_taps)
    width = int(used.max()) if k else 0
    col = torch.where(valid, col, width).view(k, n_out, -1)  # invalid taps -> a dropped extra column
    weights = torch.zeros((k, n_out, width + 1), device=dev).scatter_add_(2, col, w.view(k, n_out, -1))
    cells_at = torch.zeros((k, width + 1), dtype=torch.int64, device=dev)
    cells_at.scatter_(1, col.flatten(1), cells.flatten(1))
    return weights[:, :, :width], cells_at[:, :width], used


def _chunks(cost: Tensor, budget: int) -> list[tuple[int, int]]:
    """Split boxes sorted by ascending cost into [start, end) runs whose padded cost fits `budget`."""
    bounds, start, k = [], 0, cost.shape[0]
    positions = torch.arange(1, k + 1, device=cost.device)
    while start < k:
        # Sorted ascending, so a run's padded cost is its length times its last box's cost.
        fits = (positions[: k - start] * cost[start:]) <= budget
        end = start + max(int(fits.sum()), 1)
        bounds.append((start, end))
        start = end
    return bounds


def roi_align_torch(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Tensor:
    """ROIAlign of input (N, C, H, W) over rois (K, 5) float32 -> (K, C, oh, ow); see `detrun.ops.roi_align`."""
    n, c, h, w = input.shape
    oh, ow = output_size
    k = rois.shape[0]
    compute_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        r = rois.detach().float()
        offset = 0.5 if aligned else 0.0
        x0, y0 = r[:, 1] * spatial_scale - offset, r[:, 2] * spatial_scale - offset
        rw, rh = r[:, 3] * spatial_scale - offset - x0, r[:, 4] * spatial_scale - offset - y0
        if not aligned:  # the original op forces boxes to at least one cell
            rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
        if sampling_ratio > 0:
            gw = gh = torch.full((k,), sampling_ratio, dtype=torch.int64, device=input.device)
        else:
            gw, gh = torch.ceil(rw / ow).long(), torch.ceil(rh / oh).long()
        ay, rows, n_rows = _axis_sampling(y0, rh, oh, gh, h)
        ax, cols, n_cols = _axis_sampling(x0, rw, ow, gw, w)
        batch = r[:, 0].long()
        order = torch.argsort(n_rows * n_cols)
        cost = (n_rows * n_cols)[order] * c
    # Channels-last rows: each gathered cell is one contiguous C-vector (free if already channels_last).
    table = input.permute(0, 2, 3, 1).reshape(n * h * w, c)
    outs = []
    for start, end in _chunks(cost, _CHUNK_ELEMENTS):
        idx = order[start:end]
        ly, lx = int(n_rows[idx].max()), int(n_cols[idx].max())
        flat = ((batch[idx, None] * h + rows[idx, :ly]) * w)[:, :, None] + cols[idx, None, :lx]
        patch = table.index_select(0, flat.reshape(-1)).to(compute_dtype).view(-1, ly, lx * c)
        t = torch.bmm(ay[idx, :, :ly].to(compute_dtype), patch)  # (k, oh, lx * C)
        outs.append(torch.matmul(ax[idx, None, :, :lx].to(compute_dtype), t.view(-1, oh, lx, c)))
    if not outs:
        return input.flatten()[:0].view(0, c, oh, ow)  # a view, so backward still reaches input
    out = torch.cat(outs).index_select(0, torch.argsort(order))
    return out.permute(0, 3, 1, 2).contiguous().to(input.dtype)
