"""Pure-PyTorch ROIAlign with torchvision's exact sampling rules, as one weighted gather per bin.

Each output bin is a weighted sum of feature vectors: 4 bilinear taps per sample, samples_h x
samples_w samples per bin, each weight / (samples per bin). With the map in channels-last rows
(one contiguous C-vector per cell), that is exactly `F.embedding_bag(mode="sum",
per_sample_weights=...)`: a fused gather + weighted sum in C++, with no intermediate
(samples x C) tensor and an efficient backward (scatter-add into the map). Bilinear weights are
separable, so they are built per axis (K, bins, samples, 2) and combined by broadcasting; taps
with zero weight (samples outside the map, adaptive grids smaller than the chunk's largest) are
dropped. Boxes are sorted by samples per bin and processed in chunks of bounded memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Padded taps (boxes x bins x samples x 4) built per chunk: 2M taps = 16 MB of int64 indices.
_CHUNK_TAPS = 1 << 21


def _axis_taps(start: Tensor, length: Tensor, n_out: int, grid: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Bilinear taps along one axis for K boxes, following torchvision's kernel.

    start, length: (K,) box start and extent in feature cells (float32); grid: (K,) samples per bin;
    size: feature map extent. Returns weights (K, n_out, G, 2) float32 (including 1/grid, 0 for unused
    or out-of-map samples) and cells (K, n_out, G, 2) int64 in [0, size), G = max(grid).
    """
    g_max = max(int(grid.max()), 1) if grid.numel() else 1
    dev = start.device
    bin_size = (length / n_out)[:, None, None]
    o = torch.arange(n_out, device=dev, dtype=torch.float32)[None, :, None]
    i = torch.arange(g_max, device=dev, dtype=torch.float32)[None, None, :]
    g = grid[:, None, None]
    g_float = g.clamp(min=1).float()
    # Same float32 expression order as torchvision's kernels, so floor() agrees at cell borders.
    p = start[:, None, None] + o * bin_size + (i + 0.5) * bin_size / g_float
    valid = (p >= -1.0) & (p <= size) & (i < g)
    p = p.clamp(min=0.0)
    low = p.floor().clamp(max=size - 1).long()
    at_end = low >= size - 1
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(p), p - low.float())
    zero = torch.zeros_like(p)
    w = torch.stack((torch.where(valid, (1.0 - frac) / g_float, zero), torch.where(valid, frac / g_float, zero)), -1)
    return w, torch.stack((low, high), -1)


def _bags(rows: Tensor, wy: Tensor, cy: Tensor, wx: Tensor, cx: Tensor, width: int, dtype: torch.dtype
          ) -> tuple[Tensor, Tensor, Tensor]:
    """Flat tap indices, their weights and bag offsets for bins (k, ph, pw), in that order.

    rows: (k,) index of the box's first map row in the (N*H*W, C) table, i.e. batch_idx * H.
    """
    # (k, oh, ow, Gy, 2, Gx, 2): every (y tap, x tap) pair of every sample of every bin.
    weight = (wy[:, :, None, :, :, None, None] * wx[:, None, :, None, None, :, :]).to(dtype)
    index = (rows[:, None, None, None, None] + cy[:, :, None, :, :]) * width
    index = index[..., None, None] + cx[:, None, :, None, None, :, :]
    keep = weight != 0
    counts = keep.flatten(3).sum(-1).flatten()
    return index[keep], weight[keep], torch.cumsum(counts, 0) - counts


def roi_align_torch(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Tensor:
    """ROIAlign of input (N, C, H, W) over rois (K, 5) float32 -> (K, C, oh, ow); see `detrun.ops.roi_align`."""
    n, c, h, w = input.shape
    oh, ow = output_size
    k = rois.shape[0]
    compute_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    # Channels-last rows, one contiguous C-vector per cell (no copy if input is channels_last float).
    table = input.permute(0, 2, 3, 1).contiguous().view(n * h * w, c).to(compute_dtype)
    if k == 0:
        return table[:0].view(0, c, 1, 1).expand(0, c, oh, ow).to(input.dtype)  # still reaches input in backward
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
        # Sort by samples per bin so each chunk's padding to its largest grid stays small.
        order = torch.argsort(gh * gw)
        padded = (gh.clamp(min=1) * gw.clamp(min=1))[order] * (4 * oh * ow)
        bounds = _chunk_bounds(padded, _CHUNK_TAPS)
    outs = []
    for start, end in bounds:
        with torch.no_grad():
            idx = order[start:end]
            wy, cy = _axis_taps(y0[idx], rh[idx], oh, gh[idx], h)
            wx, cx = _axis_taps(x0[idx], rw[idx], ow, gw[idx], w)
            taps, weights, offsets = _bags(r[idx, 0].long() * h, wy, cy, wx, cx, w, compute_dtype)
        outs.append(F.embedding_bag(taps, table, offsets, mode="sum", per_sample_weights=weights))
    out = torch.cat(outs).view(k, oh, ow, c).index_select(0, torch.argsort(order))
    return out.permute(0, 3, 1, 2).contiguous().to(input.dtype)


def _chunk_bounds(cost: Tensor, budget: int) -> list[tuple[int, int]]:
    """[start, end) runs over items sorted by ascending per-item cost, each run's padded cost
    (length x its last item's cost) within `budget` (at least one item per run)."""
    bounds, start, k = [], 0, cost.shape[0]
    positions = torch.arange(1, k + 1, device=cost.device)
    while start < k:
        end = start + max(int(((positions[: k - start] * cost[start:]) <= budget).sum()), 1)
        bounds.append((start, end))
        start = end
    return bounds
