"""Box coder (boxes <-> regression deltas) and the box regression losses."""
from __future__ import annotations

import math

import torch

# Largest log-scale a delta may apply: boxes grow at most 1000/16 x, so exp() can't overflow
# (Detectron2 and torchvision both use this value).
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class Box2BoxTransform:
    """R-CNN box parametrization: deltas (dx, dy, dw, dh) between a source and a target box.

    ``dx = wx * (tx - sx) / sw``, ``dw = ww * log(tw / sw)`` (and the same for y / h), with box
    centres (sx, sy), sizes (sw, sh) = (x2 - x1, y2 - y1), no "+1" (Detectron2 and torchvision).

    Args:
        weights: (wx, wy, ww, wh) scale factors of the deltas; (1, 1, 1, 1) for the RPN and
            (10, 10, 5, 5) for the Fast R-CNN box head in both libraries.
        scale_clamp: upper bound applied to dw, dh before exp() when decoding.
    """

    def __init__(self, *, weights: tuple[float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP):
        if len(weights) != 4:
            raise ValueError(f"Box2BoxTransform weights must have 4 values (wx, wy, ww, wh), got {weights}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = float(scale_clamp)

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas that turn `src_boxes` into `target_boxes`: Tensor[N, 4] XYXY each -> Tensor[N, 4]."""
        raise NotImplementedError

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode `deltas` (Tensor[N, K*4]) relative to `boxes` (Tensor[N, 4] XYXY) -> Tensor[N, K*4] XYXY."""
        raise NotImplementedError
