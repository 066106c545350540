"""Augmentations: random policies that look at an image and pick a deterministic `Transform`.

Each takes its randomness from the `rng` it is given (the loader seeds one per sample), so a
training run is reproducible — and resumable — whatever the number of loader workers.
Detectron2's augmentations draw from the global ``np.random`` instead; that is the one API
difference a port sees (``get_transform(image, rng)``, ``aug_input.apply_augmentations(augs, rng)``).
Constructors take Detectron2's arguments in Detectron2's order.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np

from .transform import NoOpTransform, Transform, TransformList


class Augmentation:
    """Base: ``get_transform(image, rng) -> Transform``; `image` is uint8 [H, W, C] (or [H, W]).

    As in Detectron2, the names of `get_transform`'s parameters say what it reads from the
    `AugInput`: ``get_transform(self, image, sem_seg, rng)`` also gets the label map,
    ``get_transform(self, image, boxes, rng)`` the boxes (None when the input has none).
    """

    def get_transform(self, image: np.ndarray, rng: np.random.Generator) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput, rng: np.random.Generator | None = None) -> Transform:
        """Pick a transform for `aug_input`, apply it there in place and return it (as in Detectron2).
        `rng` None: a fresh unseeded generator (not reproducible)."""
        rng = rng if rng is not None else np.random.default_rng()
        reads = [name for name in inspect.signature(self.get_transform).parameters if name != "rng"]
        unknown = [name for name in reads if name not in ("image", "boxes", "sem_seg")]
        if unknown:
            raise TypeError(f"{type(self).__name__}.get_transform asks for {unknown}; an AugInput has "
                            "image, boxes and sem_seg (and the rng)")
        t = self.get_transform(**{name: getattr(aug_input, name) for name in reads}, rng=rng)
        aug_input.transform(t)
        return t


class AugInput:
    """An image with the annotations that must follow it: `boxes` XYXY float [N, 4] (pixels) and
    `sem_seg` integer label map [H, W]. Transforms replace the attributes in place."""

    def __init__(self, image: np.ndarray, *, boxes: np.ndarray | None = None, sem_seg: np.ndarray | None = None):
        if image.ndim not in (2, 3):
            raise ValueError(f"AugInput: image must be [H, W] or [H, W, C], got shape {image.shape}")
        if sem_seg is not None and sem_seg.shape != image.shape[:2]:
            raise ValueError(f"AugInput: sem_seg {sem_seg.shape} must be [H, W] of the image {image.shape[:2]}")
        self.image, self.boxes, self.sem_seg = image, boxes, sem_seg

    def transform(self, tfm: Transform) -> None:
        """Apply `tfm` to the image, boxes and label map."""
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)

    def apply_augmentations(self, augmentations: Sequence[Augmentation | Transform],
                            rng: np.random.Generator | None = None) -> TransformList:
        """Run augmentations (or fixed transforms) in order, each seeing the previous one's output;
        returns what was applied, to replay on other annotations (instance masks, keypoints)."""
        return AugmentationList(augmentations)(self, rng)


class AugmentationList(Augmentation):
    """Augmentations (or fixed transforms) applied in order to an `AugInput`, each seeing the
    previous one's output; calling it returns the `TransformList` applied (as in Detectron2)."""

    def __init__(self, augs: Sequence[Augmentation | Transform]):
        self.augs = list(augs)

    def __call__(self, aug_input: AugInput, rng: np.random.Generator | None = None) -> TransformList:
        rng = rng if rng is not None else np.random.default_rng()
        applied = []
        for aug in self.augs:
            if isinstance(aug, Transform):
                aug_input.transform(aug)
                applied.append(aug)
            else:
                applied.append(aug(aug_input, rng))
        return TransformList(applied)

    def get_transform(self, image, rng):
        # What the list does depends on each step's output: only a call on an AugInput can say.
        raise TypeError("AugmentationList has no get_transform: call it on an AugInput")


def apply_augmentations(augmentations: Sequence[Augmentation | Transform], image: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, TransformList]:
    """Run augmentations on an image alone; returns (transformed image, the TransformList applied)."""
    aug_input = AugInput(image)
    transforms = aug_input.apply_augmentations(augmentations, rng)
    return aug_input.image, transforms


class RandomApply(Augmentation):
    """Apply `tfm_or_aug` (an Augmentation, or a fixed Transform) with probability `prob`, else nothing.

    Called on an `AugInput`, the wrapped augmentation reads from it what it needs (boxes, sem_seg).
    """

    def __init__(self, tfm_or_aug: Augmentation | Transform, prob: float = 0.5):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomApply: prob must be in [0, 1], got {prob}")
        self.aug, self.prob = tfm_or_aug, prob

    def __call__(self, aug_input: AugInput, rng: np.random.Generator | None = None) -> Transform:
        rng = rng if rng is not None else np.random.default_rng()
        if rng.random() >= self.prob:
            return NoOpTransform()
        return AugmentationList([self.aug])(aug_input, rng)

    def get_transform(self, image, rng):
        if rng.random() >= self.prob:
            return NoOpTransform()
        return self.aug if isinstance(self.aug, Transform) else self.aug.get_transform(image, rng)
