"""Augmentations: random policies that look at an image and pick a deterministic `Transform`.

Each takes its randomness from the `rng` it is given (the loader seeds one per sample), so a
training run is reproducible whatever the number of loader workers.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
)


class Augmentation:
    """Base: ``get_transform(image [H, W, C] uint8, rng) -> Transform``."""

    def get_transform(self, image: np.ndarray, rng: np.random.Generator) -> Transform:
        raise NotImplementedError


def apply_augmentations(augmentations: Sequence[Augmentation], image: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, TransformList]:
    """Run augmentations in order (each sees the previous one's output image).

    Returns (transformed image, the TransformList to apply to the annotations).
    """
    transforms = []
    for aug in augmentations:
        t = aug.get_transform(image, rng)
        image = t.apply_image(image)
        transforms.append(t)
    return image, TransformList(transforms)


class ResizeShortestEdge(Augmentation):
    """Resize so the short side is `short_edge_length` (one value, or one picked per image), the long
    side at most `max_size`, keeping the aspect ratio (sizes in pixels)."""

    def __init__(self, *, short_edge_length: int | Sequence[int], max_size: int = sys.maxsize,
                 sample_style: str = "choice", interp: str = "bilinear"):
        if sample_style not in ("choice", "range"):
            raise ValueError(f"sample_style must be 'choice' or 'range', got '{sample_style}'")
        lengths = [short_edge_length] if isinstance(short_edge_length, int) else list(short_edge_length)
        if sample_style == "range" and len(lengths) != 2:
            raise ValueError(f"sample_style='range' needs short_edge_length=(min, max), got {short_edge_length}")
        self.lengths, self.max_size, self.sample_style, self.interp = lengths, max_size, sample_style, interp

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = int(rng.integers(self.lengths[0], self.lengths[1] + 1))
        else:
            size = int(self.lengths[rng.integers(len(self.lengths))]) if len(self.lengths) > 1 else self.lengths[0]
        new_h, new_w = output_size_shortest_edge(h, w, size, self.max_size)
        if (new_h, new_w) == (h, w):
            return NoOpTransform()
        return ResizeTransform(h=h, w=w, new_h=new_h, new_w=new_w, interp=self.interp)


def output_size_shortest_edge(h: int, w: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """(new_h, new_w) with the short side `short_edge` and the long side <= `max_size`, rounded."""
    scale = short_edge / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class RandomFlip(Augmentation):
    """Flip with probability `prob`, horizontally (default) or vertically.

    `keypoint_flip_indices`: for keypoint data, index k holds the keypoint that k becomes when
    mirrored (left_eye ↔ right_eye); build it with `keypoint_flip_indices(names, flip_map)`.
    """

    def __init__(self, *, prob: float = 0.5, horizontal: bool = True, vertical: bool = False,
                 keypoint_flip_indices: Sequence[int] | None = None):
        if horizontal == vertical:
            raise ValueError("RandomFlip: choose exactly one of horizontal=True or vertical=True")
        self.prob, self.horizontal, self.keypoint_flip_indices = prob, horizontal, keypoint_flip_indices

    def get_transform(self, image, rng):
        if rng.random() >= self.prob:
            return NoOpTransform()
        h, w = image.shape[:2]
        if self.horizontal:
            return HFlipTransform(width=w, keypoint_flip_indices=self.keypoint_flip_indices)
        return VFlipTransform(height=h, keypoint_flip_indices=self.keypoint_flip_indices)


def keypoint_flip_indices(names: Sequence[str], flip_map: Sequence[Sequence[str]]) -> list[int]:
    """Index of each keypoint's mirror image: names ("l", "r", "nose"), map [("l", "r")] → [1, 0, 2]."""
    partner = {a: b for a, b in flip_map} | {b: a for a, b in flip_map}
    unknown = sorted(set(partner) - set(names))
    if unknown:
        raise ValueError(f"keypoint flip map names {unknown} are not keypoint names {list(names)}")
    return [list(names).index(partner.get(n, n)) for n in names]


class ResizeScale(Augmentation):
    """Large-scale jitter, step 1: scale the image to fit a target size × a random factor in
    [min_scale, max_scale] (aspect ratio kept). Follow with `FixedSizeCrop`."""

    def __init__(self, *, min_scale: float, max_scale: float, target_height: int, target_width: int,
                 interp: str = "bilinear"):
        self.min_scale, self.max_scale = min_scale, max_scale
        self.target_height, self.target_width, self.interp = target_height, target_width, interp

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        factor = rng.uniform(self.min_scale, self.max_scale)
        scale = min(self.target_height * factor / h, self.target_width * factor / w)
        new_h, new_w = max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)
        return ResizeTransform(h=h, w=w, new_h=new_h, new_w=new_w, interp=self.interp)


class FixedSizeCrop(Augmentation):
    """Large-scale jitter, step 2: crop a random `crop_size` = (h, w) window if the image is larger,
    then (if `pad`) pad bottom/right with `pad_value` up to exactly that size."""

    def __init__(self, *, crop_size: Sequence[int], pad: bool = True, pad_value: float = 128.0):
        self.crop_size, self.pad, self.pad_value = tuple(crop_size), pad, pad_value

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        ch, cw = self.crop_size
        transforms: list[Transform] = []
        if h > ch or w > cw:
            y0 = int(rng.integers(0, max(h - ch, 0) + 1))
            x0 = int(rng.integers(0, max(w - cw, 0) + 1))
            transforms.append(CropTransform(x0=x0, y0=y0, w=min(cw, w), h=min(ch, h)))
        if self.pad and (h < ch or w < cw):
            transforms.append(PadTransform(pad_w=max(cw - w, 0), pad_h=max(ch - h, 0), pad_value=self.pad_value))
        return TransformList(transforms) if transforms else NoOpTransform()


class RandomCrop(Augmentation):
    """Crop a random window. `crop_type`:
    "relative" — (h, w) fractions of the image; "relative_range" — fractions drawn in [crop_size, 1];
    "absolute" — (h, w) pixels (clamped to the image); "absolute_range" — pixels drawn in [min, max].
    """

    def __init__(self, *, crop_type: str, crop_size: Sequence[float]):
        if crop_type not in ("relative", "relative_range", "absolute", "absolute_range"):
            raise ValueError(f"unknown crop_type '{crop_type}'")
        self.crop_type, self.crop_size = crop_type, tuple(crop_size)

    def _size(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        a, b = self.crop_size
        if self.crop_type == "relative":
            return int(h * a + 0.5), int(w * b + 0.5)
        if self.crop_type == "relative_range":
            fh, fw = rng.uniform(a, 1.0), rng.uniform(b, 1.0)
            return int(h * fh + 0.5), int(w * fw + 0.5)
        if self.crop_type == "absolute":
            return min(int(a), h), min(int(b), w)
        ch = int(rng.integers(min(int(a), h), min(int(b), h) + 1))
        cw = int(rng.integers(min(int(a), w), min(int(b), w) + 1))
        return ch, cw

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        ch, cw = self._size(h, w, rng)
        ch, cw = max(min(ch, h), 1), max(min(cw, w), 1)
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        return CropTransform(x0=x0, y0=y0, w=cw, h=ch)
