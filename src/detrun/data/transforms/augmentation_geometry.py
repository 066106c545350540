"""Geometric augmentations: resize, flip, crop, rotate, extent (randomness from the given `rng`)."""
from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .affine import ExtentTransform, RotationTransform
from .augmentation import Augmentation
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


class ResizeShortestEdge(Augmentation):
    """Resize so the short side is `short_edge_length` (one value, or one picked per image), the long
    side at most `max_size`, keeping the aspect ratio (sizes in pixels). A length of 0: no resize.

    Differs from Detectron2: `sample_style` defaults to "choice" (Detectron2: "range", where two
    lengths mean "any length between"), and the arguments are keyword-only so that Detectron2 code
    passing them by position fails loudly instead of silently sampling the other way.
    """

    def __init__(self, *, short_edge_length: int | Sequence[int], max_size: int = sys.maxsize,
                 sample_style: str = "choice", interp: str | int = "bilinear"):
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
        if size == 0:
            return NoOpTransform()
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

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False,
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

    def __init__(self, min_scale: float, max_scale: float, target_height: int, target_width: int,
                 interp: str | int = "bilinear"):
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
    then (if `pad`) pad bottom/right up to exactly that size: images with `pad_value`, label maps
    with `seg_pad_value`.

    Differs from Detectron2, which draws one random fraction for both offsets (so crops lie on a
    diagonal of the possible positions): here x and y offsets are drawn independently.
    """

    def __init__(self, crop_size: Sequence[int], pad: bool = True, pad_value: float = 128.0, seg_pad_value: int = 255):
        self.crop_size, self.pad, self.pad_value, self.seg_pad_value = tuple(crop_size), pad, pad_value, seg_pad_value

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        ch, cw = self.crop_size
        transforms: list[Transform] = []
        if h > ch or w > cw:
            y0 = int(rng.integers(0, max(h - ch, 0) + 1))
            x0 = int(rng.integers(0, max(w - cw, 0) + 1))
            transforms.append(CropTransform(x0=x0, y0=y0, w=min(cw, w), h=min(ch, h)))
        if self.pad and (h < ch or w < cw):
            transforms.append(PadTransform(pad_w=max(cw - w, 0), pad_h=max(ch - h, 0), pad_value=self.pad_value,
                                           seg_pad_value=self.seg_pad_value))
        return TransformList(transforms) if transforms else NoOpTransform()


class RandomCrop(Augmentation):
    """Crop a random window. `crop_type`:
    "relative" — (h, w) fractions of the image; "relative_range" — fractions drawn in [crop_size, 1];
    "absolute" — (h, w) pixels (clamped to the image); "absolute_range" — pixels drawn in [min, max].
    """

    def __init__(self, crop_type: str, crop_size: Sequence[float]):
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

    def get_crop_size(self, image_size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
        """(h, w) of a window for an image of `image_size` = (h, w), at least 1 and at most the image."""
        h, w = image_size
        ch, cw = self._size(h, w, rng)
        return max(min(ch, h), 1), max(min(cw, w), 1)

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        ch, cw = self.get_crop_size((h, w), rng)
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        return CropTransform(x0=x0, y0=y0, w=cw, h=ch)


class RandomCrop_CategoryAreaConstraint(Augmentation):  # noqa: N801 (Detectron2's name)
    """A `RandomCrop` (same `crop_type`, `crop_size`) whose window no single category of the label
    map fills more than `single_category_max_area` of, and that holds at least two categories;
    pixels of `ignored_category` don't count. Reads ``aug_input.sem_seg``.

    Tries up to 10 windows and keeps the last one if none qualifies, as Detectron2 does;
    ``single_category_max_area=1.0`` is a plain RandomCrop.
    """

    def __init__(self, crop_type: str, crop_size: Sequence[float], single_category_max_area: float = 1.0,
                 ignored_category: int | None = None):
        self.crop_aug = RandomCrop(crop_type, crop_size)
        self.single_category_max_area, self.ignored_category = single_category_max_area, ignored_category

    def get_transform(self, image, sem_seg, rng):
        if self.single_category_max_area >= 1.0:
            return self.crop_aug.get_transform(image, rng)
        if sem_seg is None:
            raise ValueError("RandomCrop_CategoryAreaConstraint reads the label map: give AugInput(image, sem_seg=...)")
        h, w = sem_seg.shape
        for _ in range(10):
            ch, cw = self.crop_aug.get_crop_size((h, w), rng)
            y0 = int(rng.integers(0, h - ch + 1))
            x0 = int(rng.integers(0, w - cw + 1))
            labels, counts = np.unique(sem_seg[y0:y0 + ch, x0:x0 + cw], return_counts=True)
            if self.ignored_category is not None:
                counts = counts[labels != self.ignored_category]
            if len(counts) > 1 and counts.max() < counts.sum() * self.single_category_max_area:
                break
        return CropTransform(x0=x0, y0=y0, w=cw, h=ch)


class RandomRotation(Augmentation):
    """Rotate by a random angle in degrees, counter-clockwise (see `RotationTransform`).

    `angle`: (min, max) with ``sample_style="range"``, a list to pick from with "choice", or one
    number. `center`: None (image centre), or for "range" ((x_min, y_min), (x_max, y_max)) and for
    "choice" a list of (x, y) — fractions of the width/height, as in Detectron2. `interp`: None
    means bilinear; a number is Pillow's (see `pil_resample`), not OpenCV's as in Detectron2.
    Angles that are multiples of 360 give `NoOpTransform`.
    """

    def __init__(self, angle: float | Sequence[float], expand: bool = True, center: Sequence | None = None,
                 sample_style: str = "range", interp: str | int | None = None):
        if sample_style not in ("choice", "range"):
            raise ValueError(f"sample_style must be 'choice' or 'range', got '{sample_style}'")
        angles = [float(angle)] * 2 if isinstance(angle, (int, float)) else [float(a) for a in angle]
        if sample_style == "range" and len(angles) != 2:
            raise ValueError(f"sample_style='range' needs angle=(min, max), got {angle}")
        if center is not None and isinstance(center[0], (int, float)):
            center = [tuple(center)] * (2 if sample_style == "range" else 1)
        self.angles, self.expand, self.center, self.sample_style = angles, expand, center, sample_style
        self.interp = "bilinear" if interp is None else interp

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        center = None
        if self.sample_style == "range":
            angle = rng.uniform(self.angles[0], self.angles[1])
            if self.center is not None:
                (x0, y0), (x1, y1) = self.center
                center = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        else:
            angle = self.angles[rng.integers(len(self.angles))]
            if self.center is not None:
                center = self.center[rng.integers(len(self.center))]
        if angle % 360 == 0:
            return NoOpTransform()
        if center is not None:
            center = (w * center[0], h * center[1])
        return RotationTransform(h=h, w=w, angle=angle, expand=self.expand, center=center, interp=self.interp)


class RandomExtent(Augmentation):
    """Cut a random rectangle, possibly larger than the image (the outside is black), at the
    same resolution: its size is the image's times a factor in `scale_range` = (lo, hi), and its
    centre moves from the image centre by up to ``shift_range`` = (sx, sy) times half the image's
    width/height, uniformly in each direction."""

    def __init__(self, scale_range: Sequence[float], shift_range: Sequence[float]):
        self.scale_range, self.shift_range = tuple(scale_range), tuple(shift_range)

    def get_transform(self, image, rng):
        h, w = image.shape[:2]
        # the rectangle around the origin first, scaled, shifted, then moved to the image centre
        rect = np.array([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h]) * rng.uniform(*self.scale_range)
        rect[0::2] += self.shift_range[0] * w * (rng.random() - 0.5) + 0.5 * w
        rect[1::2] += self.shift_range[1] * h * (rng.random() - 0.5) + 0.5 * h
        out_h, out_w = max(int(rect[3] - rect[1]), 1), max(int(rect[2] - rect[0]), 1)
        return ExtentTransform(src_rect=tuple(rect), output_size=(out_h, out_w))
