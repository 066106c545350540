"""Affine transforms: rotation and extent (crop/pad/scale to a rectangle that may leave the image).

Both map continuous pixel coordinates (pixel j covers [j, j+1)) through one 2x3 matrix and
resample the image at output pixel centres (j + 0.5) in that same convention, so image, boxes,
polygons, masks and keypoints stay aligned with no half-pixel fix-up (Detectron2 needs one for
OpenCV, whose pixel centres sit on integers). The resampling is our own: Pillow's affine
bilinear filter truncates to uint8, darkening by half a level on average.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .transform import CropTransform, Transform, TransformList, pil_resample


class AffineTransform(Transform):
    """Map coordinates by ``(x', y') = matrix @ (x, y, 1)`` into an output of (out_h, out_w) pixels.

    Output pixels whose centre maps outside the input get `fill` (images), False (bit masks) or
    `seg_fill` (label maps; 255 = "ignore" — Detectron2 fills 0 there, a real class in most label
    maps). `interp`: "bilinear" (edge pixels repeat, results rounded) or "nearest"; masks and label
    maps always take the nearest pixel.
    """

    def __init__(self, *, matrix: np.ndarray, out_h: int, out_w: int, interp: str | int = "bilinear",
                 fill: float = 0, seg_fill: int = 255):
        if pil_resample(interp) not in (Image.Resampling.NEAREST, Image.Resampling.BILINEAR):
            raise ValueError(f"{type(self).__name__}: interp must be 'nearest' or 'bilinear', got {interp!r}")
        self.bilinear = pil_resample(interp) == Image.Resampling.BILINEAR
        self.matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
        self.out_h, self.out_w, self.interp, self.fill, self.seg_fill = int(out_h), int(out_w), interp, fill, seg_fill
        # output -> input, the direction resampling needs
        self.inverse_matrix = np.linalg.inv(np.vstack([self.matrix, [0.0, 0.0, 1.0]]))[:2]

    def apply_image(self, img):
        return self._resample(img, self.fill, self.bilinear)

    def apply_coords(self, coords):
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        return coords @ self.matrix[:, :2].T + self.matrix[:, 2]

    def apply_masks(self, masks):
        return np.moveaxis(self._resample(np.moveaxis(np.asarray(masks), 0, -1), False, False), -1, 0)

    def apply_segmentation(self, segmentation):
        return self._resample(np.asarray(segmentation), self.seg_fill, False)

    def _resample(self, src: np.ndarray, fill, bilinear: bool) -> np.ndarray:
        """src [H, W, ...] -> [out_h, out_w, ...], sampled where each output pixel centre lands."""
        h, w = src.shape[:2]
        ys, xs = np.mgrid[0:self.out_h, 0:self.out_w] + 0.5
        (a, b, c), (d, e, f) = self.inverse_matrix
        x, y = a * xs + b * ys + c, d * xs + e * ys + f
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        if bilinear:
            # neighbours around the sample point, whose pixel centres are at integer + 0.5
            x, y = x - 0.5, y - 0.5
            x0, y0 = np.floor(x), np.floor(y)
            fx, fy = (x - x0).reshape(x.shape + (1,) * (src.ndim - 2)), (y - y0).reshape(y.shape + (1,) * (src.ndim - 2))
            cols = [np.clip(x0 + k, 0, w - 1).astype(np.int64) for k in (0, 1)]
            rows = [np.clip(y0 + k, 0, h - 1).astype(np.int64) for k in (0, 1)]
            values = src.astype(np.float32)
            top = values[rows[0], cols[0]] * (1 - fx) + values[rows[0], cols[1]] * fx
            bottom = values[rows[1], cols[0]] * (1 - fx) + values[rows[1], cols[1]] * fx
            out = top * (1 - fy) + bottom * fy
            out = np.rint(out).astype(src.dtype) if np.issubdtype(src.dtype, np.integer) else out.astype(src.dtype)
        else:
            out = src[np.clip(np.floor(y), 0, h - 1).astype(np.int64), np.clip(np.floor(x), 0, w - 1).astype(np.int64)]
        out[~inside] = fill
        return out


class RotationTransform(AffineTransform):
    """Rotate an (h, w) image by `angle` degrees counter-clockwise about `center` (x, y) in pixels
    (default: the image centre). `expand`: the output grows to hold the whole rotated image
    (its centre then lands at the output's centre); else it keeps (h, w) and loses the corners.

    Boxes become the box around the rotated corners (larger than the object, as in Detectron2;
    recompute them from masks if that matters).
    """

    def __init__(self, *, h: int, w: int, angle: float, expand: bool = True, center: Sequence[float] | None = None,
                 interp: str | int = "bilinear"):
        self.h, self.w, self.angle, self.expand, self.center = h, w, float(angle), expand, center
        cx, cy = (w / 2, h / 2) if center is None else center
        cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
        # Counter-clockwise on screen with y pointing down (OpenCV's getRotationMatrix2D).
        matrix = np.array([[cos, sin, (1 - cos) * cx - sin * cy],
                           [-sin, cos, sin * cx + (1 - cos) * cy]])
        if expand:
            out_w, out_h = np.rint([h * abs(sin) + w * abs(cos), h * abs(cos) + w * abs(sin)]).astype(int)
            moved_centre = matrix[:, :2] @ (w / 2, h / 2) + matrix[:, 2]
            matrix[:, 2] += (out_w / 2, out_h / 2) - moved_centre
        else:
            out_w, out_h = w, h
        super().__init__(matrix=matrix, out_h=out_h, out_w=out_w, interp=interp)

    def apply_image(self, img):
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"RotationTransform expects a {self.h}x{self.w} image, got {img.shape[:2]}")
        return super().apply_image(img)

    def inverse(self):
        """Rotate back (expanding again), then crop the original (h, w) out of the middle."""
        if not self.expand:
            raise NotImplementedError("RotationTransform(expand=False) has no inverse: the corners were cut off")
        back = RotationTransform(h=self.out_h, w=self.out_w, angle=-self.angle, expand=True, interp=self.interp)
        return TransformList([back, CropTransform(x0=(back.out_w - self.w) // 2, y0=(back.out_h - self.h) // 2,
                                                  w=self.w, h=self.h)])


class ExtentTransform(AffineTransform):
    """Take the rectangle `src_rect` = (x0, y0, x1, y1) of the input (pixels; it may extend past the
    image, which gives `fill`) and scale it to `output_size` = (h, w)."""

    def __init__(self, *, src_rect: Sequence[float], output_size: Sequence[int],
                 interp: str | int = "bilinear", fill: float = 0):
        x0, y0, x1, y1 = (float(v) for v in src_rect)
        out_h, out_w = output_size
        sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
        self.src_rect, self.output_size = (x0, y0, x1, y1), (int(out_h), int(out_w))
        super().__init__(matrix=[[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]], out_h=out_h, out_w=out_w,
                         interp=interp, fill=fill)
