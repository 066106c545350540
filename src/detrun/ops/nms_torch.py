"""Pure-PyTorch greedy NMS: IoUs only of pairs that could suppress, then greedy in parallel rounds.

1. Candidates. Boxes sorted by (class, x1). For a box i and a later box k in that order, the IoU is
   at most the IoU of their x-intervals, at most (x2_i - x1_k) / w_i; so k can only be suppressed
   by (or suppress) i if x1_k < x2_i - t * w_i. Each box's candidates are therefore a run of the
   boxes right after it (its "reach"), found with one merge sort, never an N x N matrix.
2. Edges. IoUs of the candidate runs, as dense (rows x run length) tiles of shifted views (no
   gathers), in torchvision's float formula; pairs over the threshold become edges from the
   higher-scored box to the lower one.
3. Greedy. A box with no undecided higher-scored suppressor is kept; the boxes it suppresses are
   removed; repeat. A few vectorized rounds settle typical inputs (benchmarks/ops.py: 1-4 rounds);
   chains of boxes that each suppress the next (one box per round) are finished by one pass in
   Python over the edges left.
Class-aware NMS separates classes by the sort (pairs never cross a class), not by offsetting
coordinates as torchvision does for small inputs: offsets round coordinates and can change an IoU
comparison (tests/ops/test_nms.py has a case), so this always gives the per-class result.

Indexing goes through index_select / masked_select / index_fill_ and every tile has at most
_TILE elements: in PyTorch 2.x's CPU kernels advanced indexing (`t[idx]`), searchsorted and ops on
more than 32768 elements (at::internal::GRAIN_SIZE) run multi-threaded, and on a machine shared
with other jobs each such op waits for a descheduled thread (measured on 2 cores at load 4: 8-12 ms
for `b[perm]` or searchsorted on 1000 boxes against 5-12 us for index_select).
"""
from __future__ import annotations

import torch
from torch import Tensor

# Relative slack on the threshold in the candidate test: the float32 IoU of a pair is within ~1e-6
# (relative) of the exact IoU the test bounds, so no pair whose float IoU exceeds t is left out.
_MARGIN = 1e-5
# Rows whose sides are below this keep the plain x-overlap test: products of such sides can be
# subnormal, where the float IoU is no longer within _MARGIN of the exact one.
_TINY = 2.0**-40
# IoU tile size: at most at::internal::GRAIN_SIZE elements, so each op stays on one thread (above).
_TILE = 1 << 15
_ROWS = 64  # tile rows come in multiples of this
_ROUNDS = 8  # vectorized greedy rounds before the Python pass


def _candidates(b: Tensor, idxs: Tensor | None, threshold: float) -> tuple[Tensor, Tensor]:
    """Boxes b (N, 4) in (class, x1) order: perm (N,) int64 into b, and reach (N,): box perm[p] can
    only overlap more than `threshold` with boxes perm[p+1 : reach[p]]."""
    n = b.shape[0]
    b64 = b.double()  # exact for float32 boxes, and the bound below then rounds negligibly
    x1, x2 = b64[:, 0], b64[:, 2]
    w, h = x2 - x1, b64[:, 3] - b64[:, 1]
    if threshold < 0:  # IoU 0 > threshold: every pair of a class is a candidate
        limit = torch.full_like(x1, float("inf"))
    else:
        t = threshold * (1 - _MARGIN) if threshold >= _TINY else 0.0
        t = torch.where((w >= _TINY) & (h >= _TINY), t, 0.0)
        # + a few ulps of the coordinates: covers the rounding of this bound for float64 boxes.
        limit = x2 - t * w + 1e-14 * (x1.abs() + x2.abs())
    # Merge sort of limits and x1: limits first, so a stable sort puts each limit before boxes with
    # an equal x1 (those are not candidates); the class sort after it keeps x1 order inside a class.
    o = torch.sort(torch.cat([limit, x1]), stable=True).indices
    if idxs is not None:
        o = o.index_select(0, torch.sort(idxs.repeat(2).index_select(0, o), stable=True).indices)
    is_box = o >= n
    perm = o.masked_select(is_box) - n
    # reach = boxes before the limit in the merged order = the box position the candidates end at.
    boxes_before = torch.cumsum(is_box, 0) - is_box.long()
    reach = torch.empty(n, dtype=torch.long, device=b.device)
    reach.index_copy_(0, o.masked_select(~is_box), boxes_before.masked_select(~is_box))
    return perm, reach.index_select(0, perm)


def _tile_edges(c: Tensor, area: Tensor, counts: Tensor, r0: int, r1: int, d: int,
                threshold: float) -> tuple[Tensor, Tensor]:
    """Edges (p, q) among rows r0..r1-1 of c (4, N + pad) and the d boxes after each row."""
    a = c[:, r0:r1, None]  # (4, R, 1)
    o = c[:, r0 + 1 : r1 + d].unfold(1, d, 1)  # (4, R, d): o[:, r, j] = box r0 + r + 1 + j
    # torchvision's formula and operation order: inter / (area_i + area_j - inter).
    iw = (torch.min(a[2], o[2]) - torch.max(a[0], o[0])).clamp_(min=0)
    ih = (torch.min(a[3], o[3]) - torch.max(a[1], o[1])).clamp_(min=0)
    inter = iw * ih
    hit = inter / (area[r0:r1, None] + area[r0 + 1 : r1 + d].unfold(0, d, 1) - inter) > threshold
    hit &= torch.arange(d, device=c.device) < counts[r0:r1, None]  # only the row's own candidates
    r, j = hit.nonzero().unbind(1)
    return r + r0, r + (r0 + 1) + j


def _edges(bs: Tensor, reach: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Pairs (p, q), p < q positions in bs (N, 4), q < reach[p], with IoU(bs[p], bs[q]) > threshold."""
    n, dev = bs.shape[0], bs.device
    counts = (reach - torch.arange(1, n + 1, device=dev)).clamp_(min=0)  # candidates after each box
    segs = -(-n // _ROWS)
    run = torch.nn.functional.pad(counts, (0, segs * _ROWS - n)).view(segs, _ROWS).amax(1).tolist()
    # Columns padded past the end (masked out in the tiles), so every tile is a plain shifted view.
    c = torch.nn.functional.pad(bs.t(), (0, max(run) + 1))
    area = (c[2] - c[0]) * (c[3] - c[1])
    budget = _TILE if dev.type == "cpu" else 64 * _TILE  # fewer, larger kernels off the CPU
    ps, qs = [counts[:0]], [counts[:0]]
    s = 0
    while s < segs:
        # Rows of segments s..e-1 against the longest run among them, within the budget.
        d, e = run[s], s + 1
        while e < segs and (e + 1 - s) * _ROWS * max(d, run[e]) <= budget:
            d, e = max(d, run[e]), e + 1
        r0, r1, s = s * _ROWS, min(e * _ROWS, n), e
        if d == 0:
            continue
        step = max(1, budget // d)  # fewer rows per tile where one segment's run is long
        for t0 in range(r0, r1, step):
            p, q = _tile_edges(c, area, counts, t0, min(t0 + step, r1), d, threshold)
            ps.append(p)
            qs.append(q)
    return torch.cat(ps), torch.cat(qs)


def _greedy(u: Tensor, v: Tensor, n: int) -> Tensor:
    """(n,) bool over score ranks: kept by greedy NMS with edges u[e] < v[e] ("u suppresses v")."""
    undecided = torch.ones(n, dtype=torch.bool, device=u.device)
    keep = torch.zeros_like(undecided)
    for _ in range(_ROUNDS):
        if not u.numel():
            break
        # Free: no undecided box can suppress it (every edge's ends are undecided here): kept.
        free = undecided & ~torch.zeros_like(undecided).index_fill_(0, v, True)
        removed = torch.zeros_like(undecided).index_fill_(0, v.masked_select(free.index_select(0, u)), True)
        keep |= free
        undecided &= ~(free | removed)
        live = undecided.index_select(0, u) & undecided.index_select(0, v)
        u, v = u.masked_select(live), v.masked_select(live)
    keep |= undecided
    if u.numel():
        # Chains left (each round settled about one box per chain): one sequential pass over the
        # boxes still tied by edges, by rank. The Python work is O(edges left).
        out: dict[int, list[int]] = {}
        for a, z in zip(u.tolist(), v.tolist()):
            out.setdefault(a, []).append(z)
        dropped: set[int] = set()
        for a in sorted(out):
            if a not in dropped:
                dropped.update(out[a])
        keep.index_fill_(0, torch.tensor(sorted(dropped), dtype=torch.long, device=u.device), False)
    return keep


def nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """Indices (int64) kept by greedy (class-aware if idxs is given) NMS, by decreasing score, ties
    by lower index; see `detrun.ops.nms`. IoU in float32 (float64 for float64 boxes), torchvision's
    formula, compared with `iou_threshold` as given (the caller rounds it for float32)."""
    n = boxes.shape[0]
    order = torch.sort(scores, descending=True, stable=True).indices
    if n == 0:
        return order
    b = boxes.to(torch.float64 if boxes.dtype == torch.float64 else torch.float32)
    perm, reach = _candidates(b, idxs, iou_threshold)
    p, q = _edges(b.index_select(0, perm), reach, iou_threshold)
    # Score rank of each box, in perm order: edges point from the higher-scored box.
    rank = torch.empty_like(order).index_copy_(0, order, torch.arange(n, device=order.device))
    rank = rank.index_select(0, perm)
    rp, rq = rank.index_select(0, p), rank.index_select(0, q)
    keep = _greedy(torch.minimum(rp, rq), torch.maximum(rp, rq), n)
    return order.masked_select(keep)
