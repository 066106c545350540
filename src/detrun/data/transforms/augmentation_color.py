"""Photometric augmentations: each blends the image with a reference by a random weight w
(`BlendTransform`: ``(1 - w) * reference + w * image``), as Detectron2 does. Geometry and
annotations are unchanged."""
from __future__ import annotations

import numpy as np

from .augmentation import Augmentation
from .transform import BlendTransform

# ITU-R 601 luma weights (Pillow's "L" conversion and Detectron2's RandomSaturation use them)
LUMA_RGB = (0.299, 0.587, 0.114)


class _RandomBlend(Augmentation):
    def __init__(self, intensity_min: float, intensity_max: float):
        if intensity_min > intensity_max:
            raise ValueError(f"{type(self).__name__}: intensity_min {intensity_min} > intensity_max {intensity_max}")
        self.intensity_min, self.intensity_max = intensity_min, intensity_max

    def _weight(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.intensity_min, self.intensity_max))


class RandomBrightness(_RandomBlend):
    """Scale pixel values by w in [intensity_min, intensity_max] (blend with black): 1 keeps the
    image, 0 makes it black, 2 doubles it (clipped at 255)."""

    def get_transform(self, image, rng):
        w = self._weight(rng)
        return BlendTransform(src_image=0.0, src_weight=1 - w, dst_weight=w)


class RandomContrast(_RandomBlend):
    """Blend with the image's mean value (over all pixels and channels) by w in
    [intensity_min, intensity_max]: w < 1 lowers the contrast, w > 1 raises it."""

    def get_transform(self, image, rng):
        w = self._weight(rng)
        return BlendTransform(src_image=float(image.mean()), src_weight=1 - w, dst_weight=w)


class RandomSaturation(_RandomBlend):
    """Blend with the image's grey version (luma weights 0.299 R, 0.587 G, 0.114 B) by w in
    [intensity_min, intensity_max]: 0 is grey, 1 unchanged, > 1 more saturated.

    `image_format`: the channel order the augmentation sees — the mapper's ``image_format``.
    Detectron2 always assumes RGB, which weighs red and blue the wrong way round on its default
    BGR input; pass ``image_format="BGR"`` there. Grey [H, W, 1] images are refused.
    """

    def __init__(self, intensity_min: float, intensity_max: float, image_format: str = "RGB"):
        super().__init__(intensity_min, intensity_max)
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"RandomSaturation: image_format must be 'RGB' or 'BGR', got '{image_format}'")
        self.weights = np.array(LUMA_RGB if image_format == "RGB" else LUMA_RGB[::-1], dtype=np.float32)

    def get_transform(self, image, rng):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"RandomSaturation needs a colour [H, W, 3] image, got shape {image.shape}")
        w = self._weight(rng)
        grey = image.astype(np.float32) @ self.weights
        return BlendTransform(src_image=grey[:, :, None], src_weight=1 - w, dst_weight=w)
