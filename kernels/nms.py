"""Greedy NMS in two kernels: a pairwise suppression bitmask, then a single-program sweep.

1. `_suppression_mask`: boxes sorted by score; program (row block, word block) computes IoUs of
   BLOCK_R boxes against WORDS * 32 later boxes and packs "i suppresses j" (IoU > threshold, j > i,
   same class if given) into int32 words: mask[i, w] bit b <=> box i suppresses box 32 w + b.
2. `_sweep`: one program walks the words in order. Within a word it resolves the 32 boxes
   from the diagonal words (a few vectorized fixed-point steps), then ORs the rows of the kept boxes into
   the running `removed` bitmap for all later words, CHUNK words at a time (the bitmap lives in a
   small global buffer, so any N works). No host round trip, unlike torchvision's CUDA op which
   copies the mask to the CPU for this step.
Memory: N * ceil(N / 32) * 4 bytes for the mask (50 MB at 20k boxes), like torchvision's.
Tile sizes are fixed rather than autotuned: N changes on every call, and an autotune key on N
would re-tune each time.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

# IoU tile: BLOCK_R rows x WORDS 32-bit words of columns. The interpreter runs each program as
# NumPy, where fewer, larger tiles are much faster.
_BLOCK_R, _WORDS = (128, 8) if triton.knobs.runtime.interpret else (64, 2)
_CHUNK = 32  # words ORed per step of the sweep: a [32 rows, 32 words, 32 bits] tile


@triton.jit
def _suppression_mask(boxes_ptr, cls_ptr, mask_ptr, n, n_words, threshold, HAS_CLS: tl.constexpr,
                      BLOCK_R: tl.constexpr, WORDS: tl.constexpr):
    row0 = tl.program_id(0) * BLOCK_R
    col0 = tl.program_id(1) * (WORDS * 32)
    # The sweep reads only words at or after a row's own word: skip tiles wholly below the diagonal.
    if col0 + WORDS * 32 <= (row0 // 32) * 32:
        return
    rows = row0 + tl.arange(0, BLOCK_R)
    cols = col0 + tl.arange(0, WORDS * 32)
    rm, cm = rows < n, cols < n
    ax1 = tl.load(boxes_ptr + rows * 4 + 0, mask=rm, other=0.0)
    ay1 = tl.load(boxes_ptr + rows * 4 + 1, mask=rm, other=0.0)
    # Padding lanes get unit boxes, so that their IoU is 0 rather than 0/0.
    ax2 = tl.load(boxes_ptr + rows * 4 + 2, mask=rm, other=1.0)
    ay2 = tl.load(boxes_ptr + rows * 4 + 3, mask=rm, other=1.0)
    bx1 = tl.load(boxes_ptr + cols * 4 + 0, mask=cm, other=0.0)
    by1 = tl.load(boxes_ptr + cols * 4 + 1, mask=cm, other=0.0)
    bx2 = tl.load(boxes_ptr + cols * 4 + 2, mask=cm, other=1.0)
    by2 = tl.load(boxes_ptr + cols * 4 + 3, mask=cm, other=1.0)
    # torchvision's float32 formula: inter / (area_a + area_b - inter), correctly rounded division.
    iw = tl.maximum(tl.minimum(ax2[:, None], bx2[None, :]) - tl.maximum(ax1[:, None], bx1[None, :]), 0.0)
    ih = tl.maximum(tl.minimum(ay2[:, None], by2[None, :]) - tl.maximum(ay1[:, None], by1[None, :]), 0.0)
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    iou = tl.div_rn(inter, area_a[:, None] + area_b[None, :] - inter)
    sup = (iou > threshold) & (cols[None, :] > rows[:, None]) & cm[None, :]
    if HAS_CLS:
        ca = tl.load(cls_ptr + rows, mask=rm, other=0)
        cb = tl.load(cls_ptr + cols, mask=cm, other=0)
        sup = sup & (ca[:, None] == cb[None, :])
    # Distinct powers of two: their sum is their bitwise OR.
    bits = sup.to(tl.int32) << (tl.arange(0, WORDS * 32) % 32)[None, :]
    words = tl.sum(tl.reshape(bits, (BLOCK_R, WORDS, 32)), axis=2)
    wi = tl.program_id(1) * WORDS + tl.arange(0, WORDS)
    out = mask_ptr + rows[:, None].to(tl.int64) * n_words + wi[None, :]
    tl.store(out, words, mask=rm[:, None] & (wi < n_words)[None, :])


@triton.jit
def _or_over_rows(x):
    """Bitwise OR over axis 0 of int32 x [R, C] -> [C], via per-bit max: a max reduction is native
    everywhere (the interpreter runs custom combine functions element by element in Python)."""
    bit = tl.arange(0, 32)
    any_set = tl.max((x[:, :, None] >> bit[None, None, :]) & 1, axis=0)
    # Distinct powers of two: their sum is their bitwise OR.
    return tl.sum(any_set << bit[None, :], axis=1)


@triton.jit
def _sweep(mask_ptr, removed_ptr, keep_ptr, n, n_words, CHUNK: tl.constexpr):
    lanes = tl.arange(0, 32)
    chunk = tl.arange(0, CHUNK)
    for w in range(0, n_words):
        rows = w * 32 + lanes
        row_ok = rows < n
        row_ptr = mask_ptr + rows.to(tl.int64) * n_words
        diag = tl.load(row_ptr + w, mask=row_ok, other=0)
        removed_w = tl.load(removed_ptr + w)
        # Resolve the word's 32 boxes: keep[b] = not removed and no kept earlier box of the word
        # suppresses b. diag only has bits j > i, so iterating from "all alive" settles one more
        # link of the longest suppression chain per step: a few vector steps instead of 32 serial ones.
        kept = (((removed_w >> lanes) & 1) == 0) & row_ok
        n_changed = tl.sum(kept.to(tl.int32)) * 0 + 1
        while n_changed > 0:
            sup = removed_w | tl.sum(_or_over_rows(tl.where(kept, diag, 0)[:, None]))
            new_kept = (((sup >> lanes) & 1) == 0) & row_ok
            n_changed = tl.sum((new_kept != kept).to(tl.int32))
            kept = new_kept
        tl.store(keep_ptr + rows, kept.to(tl.int8), mask=row_ok)
        # Kept boxes only suppress later boxes, whose bits live in words > w.
        for start in range(w + 1, n_words, CHUNK):
            wi = start + chunk
            wm = wi < n_words
            tile = tl.load(row_ptr[:, None] + wi[None, :], mask=kept[:, None] & wm[None, :], other=0)
            removed = tl.load(removed_ptr + wi, mask=wm, other=0) | _or_over_rows(tile)
            tl.store(removed_ptr + wi, removed, mask=wm)
        # The next iteration reads words other threads just wrote.
        tl.debug_barrier()


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """Indices (int64) kept by greedy NMS (class-aware if idxs (N,) is given), by decreasing score;
    boxes (N, 4) fp16/bf16/fp32 compared in float32. Semantics: `detrun.ops.nms`."""
    order = torch.sort(scores, descending=True, stable=True).indices
    n = order.numel()
    if n == 0:
        return order
    b = boxes[order].float().contiguous()
    cls = idxs[order].contiguous() if idxs is not None else b  # unused pointer when HAS_CLS is False
    n_words = triton.cdiv(n, 32)
    mask = torch.empty((n, n_words), dtype=torch.int32, device=boxes.device)
    grid = (triton.cdiv(n, _BLOCK_R), triton.cdiv(n_words, _WORDS))
    # Launched through `wrap_triton`: torch.compile traces them inside a `triton_op` (eager: plain launches).
    torch.library.wrap_triton(_suppression_mask)[grid](b, cls, mask, n, n_words, iou_threshold,
                                                       HAS_CLS=idxs is not None, BLOCK_R=_BLOCK_R, WORDS=_WORDS)
    removed = torch.zeros(n_words, dtype=torch.int32, device=boxes.device)
    keep = torch.empty(n, dtype=torch.int8, device=boxes.device)
    torch.library.wrap_triton(_sweep)[(1,)](mask, removed, keep, n, n_words, CHUNK=_CHUNK)
    return order[keep.bool()]
