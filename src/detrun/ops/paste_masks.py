"""Pasting per-box mask probabilities into full images (Mask R-CNN inference).

`paste_masks` checks its arguments, picks the backend (`dispatch`) and calls the registered op
`torch.ops.detrun.paste_masks` (`library`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import dispatch, library


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None = 0.5, *,
                backend: str | None = None) -> Tensor:
    """Resample each mask bilinearly into its box on an image of `image_size` (Detectron2's semantics).

    For image pixel (x, y) (integer column/row, center at (x + 0.5, y + 0.5)) and box (x1, y1, x2, y2),
    the mask is sampled at continuous mask coordinates
        u = (x + 0.5 - x1) / (x2 - x1) * Mw - 0.5,    v = (y + 0.5 - y1) / (y2 - y1) * Mh - 0.5
    (mask cell centers at integer u, v) by bilinear interpolation over the four neighbouring cells,
    counting cells outside the mask as 0. So the box edges are the mask's outer edges, and pixels more
    than half a mask cell outside the box get 0. Boxes of zero/negative width or height or with
    non-finite coordinates give all-zero masks. This equals `F.grid_sample(..., align_corners=False,
    padding_mode="zeros")` over the whole image, as in Detectron2's `paste_masks_in_image`.

    Args:
        masks: (R, Mh, Mw) or (R, 1, Mh, Mw) probabilities (fp16/bf16/fp32/fp64; sampled in float32).
        boxes: (R, 4) XYXY in image pixels (float32 inside; may extend past the image).
        image_size: (H, W) of the output.
        threshold: pixels with probability >= threshold are True; None returns the probabilities.
        backend: None | "triton" | "torch"; see `detrun.ops.dispatch`.

    Returns:
        (R, H, W) bool, or masks' dtype if threshold is None.
    """
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dim() != 3:
        raise ValueError(f"paste_masks: masks must be (R, M, M) or (R, 1, M, M), got {tuple(masks.shape)}")
    if not masks.is_floating_point():
        raise TypeError(f"paste_masks: masks must be floating probabilities, got {masks.dtype}")
    if boxes.shape != (masks.shape[0], 4):
        raise ValueError(f"paste_masks: boxes must be ({masks.shape[0]}, 4), got {tuple(boxes.shape)}")
    h, w = (s if isinstance(s, torch.SymInt) else int(s) for s in image_size)
    name = dispatch.select("paste_masks", masks, backend)
    args = (masks, boxes.to(device=masks.device, dtype=torch.float32), h, w,
            None if threshold is None else float(threshold))
    if library.use_triton_op(name):
        return library.triton_ops().paste_masks(*args)
    return torch.ops.detrun.paste_masks(*args, library.op_backend("paste_masks", masks, name, backend))
