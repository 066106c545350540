"""What a part declares about each of its outputs, so the next part derives its sizes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeSpec:
    """Shape of one feature map: `channels`, and `stride` in input pixels per feature pixel."""

    channels: int
    stride: int = 1
