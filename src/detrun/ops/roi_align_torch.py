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

from collections.abc import Iterator

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
          ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat tap indices, their weights, bag offsets and bag sizes for bins (k, ph, pw), in that order.

    rows: (k,) index of the box's first map row in the (N*H*W, C) table, i.e. batch_idx * H.
    """
    # (k, oh, ow, Gy, 2, Gx, 2): every (y tap, x tap) pair of every sample of every bin.
    weight = (wy[:, :, None, :, :, None, None] * wx[:, None, :, None, None, :, :]).to(dtype)
    index = (rows[:, None, None, None, None] + cy[:, :, None, :, :]) * width
    index = index[..., None, None] + cx[:, None, :, None, None, :, :]
    keep = weight != 0
    counts = keep.flatten(3).sum(-1).flatten()
    return index[keep], weight[keep], torch.cumsum(counts, 0) - counts, counts


def _plan(rois: Tensor, shape: tuple[int, int, int, int], output_size: tuple[int, int], spatial_scale: float,
          sampling_ratio: int, aligned: bool, compute_dtype: torch.dtype
          ) -> tuple[Tensor, Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]]:
    """Boxes sorted by samples per bin (`order`) and, per chunk of that order, the bags of every
    output bin: (tap indices into the (N*H*W, C) table, their weights, bag offsets, bag sizes),
    built lazily (one chunk's taps in memory at a time)."""
    n, c, h, w = shape
    oh, ow = output_size
    k = rois.shape[0]
    r = rois.detach().float()
    offset = 0.5 if aligned else 0.0
    x0, y0 = r[:, 1] * spatial_scale - offset, r[:, 2] * spatial_scale - offset
    rw, rh = r[:, 3] * spatial_scale - offset - x0, r[:, 4] * spatial_scale - offset - y0
    if not aligned:  # the original op forces boxes to at least one cell
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    if sampling_ratio > 0:
        gw = gh = torch.full((k,), sampling_ratio, dtype=torch.int64, device=rois.device)
    else:
        gw, gh = torch.ceil(rw / ow).long(), torch.ceil(rh / oh).long()
    # Sort by samples per bin so each chunk's padding to its largest grid stays small.
    order = torch.argsort(gh * gw)
    padded = (gh.clamp(min=1) * gw.clamp(min=1))[order] * (4 * oh * ow)

    def chunks() -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        for start, end in _chunk_bounds(padded, _CHUNK_TAPS):
            idx = order[start:end]
            with torch.no_grad():  # (a `yield` inside this block would leak no_grad to the caller)
                wy, cy = _axis_taps(y0[idx], rh[idx], oh, gh[idx], h)
                wx, cx = _axis_taps(x0[idx], rw[idx], ow, gw[idx], w)
                bags = _bags(r[idx, 0].long() * h, wy, cy, wx, cx, w, compute_dtype)
            yield bags

    return order, chunks()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def roi_align_torch(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Tensor:
    """ROIAlign of input (N, C, H, W) over rois (K, 5) float32 -> (K, C, oh, ow); see `detrun.ops.roi_align`.

    Differentiable w.r.t. `input` by autograd (embedding_bag's backward); `roi_align_torch_backward`
    computes the same gradient without a graph (the registered op's backward)."""
    n, c, h, w = input.shape
    oh, ow = output_size
    k = rois.shape[0]
    # Channels-last rows, one contiguous C-vector per cell (no copy if input is channels_last float).
    table = input.permute(0, 2, 3, 1).contiguous().view(n * h * w, c).to(_compute_dtype(input.dtype))
    if k == 0:
        return table[:0].view(0, c, 1, 1).expand(0, c, oh, ow).to(input.dtype)  # still reaches input in backward
    with torch.no_grad():
        order, chunks = _plan(rois, (n, c, h, w), output_size, spatial_scale, sampling_ratio, aligned, table.dtype)
    outs = [F.embedding_bag(taps, table, offsets, mode="sum", per_sample_weights=weights)
            for taps, weights, offsets, _ in chunks]
    out = torch.cat(outs).view(k, oh, ow, c).index_select(0, torch.argsort(order))
    return out.permute(0, 3, 1, 2).contiguous().to(input.dtype)


@torch.no_grad()
def roi_align_torch_backward(grad: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                             input_dtype: torch.dtype, output_size: tuple[int, int], spatial_scale: float,
                             sampling_ratio: int, aligned: bool) -> Tensor:
    """Gradient w.r.t. the input of `roi_align_torch`, from the output gradient (K, C, oh, ow):
    embedding_bag's own backward (a scatter of weighted rows) over the same bags as the forward."""
    n, c, h, w = input_shape
    oh, ow = output_size
    k = rois.shape[0]
    compute_dtype = _compute_dtype(input_dtype)
    table_grad = torch.zeros((n * h * w, c), dtype=compute_dtype, device=grad.device)
    if k:
        order, chunks = _plan(rois, (n, c, h, w), output_size, spatial_scale, sampling_ratio, aligned, compute_dtype)
        # Bag rows in the forward's order: row j of the concatenated chunks is output box order[j].
        rows = grad.permute(0, 2, 3, 1).index_select(0, order).to(compute_dtype).reshape(k * oh * ow, c)
        no_index = torch.empty(0, dtype=torch.int64, device=grad.device)
        start = 0
        for taps, weights, offsets, counts in chunks:
            bags = offsets.numel()
            table_grad += torch.ops.aten._embedding_bag_backward(
                rows[start:start + bags], taps, offsets, no_index, counts, no_index, n * h * w, False, 0, False,
                weights, -1)
            start += bags
    return table_grad.view(n, h, w, c).permute(0, 3, 1, 2).to(input_dtype)


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
