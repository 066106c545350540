"""Deterministic transforms applied consistently to an image and its annotations.

Conventions: images are numpy uint8 [H, W, C] (C = 1 or 3) or [H, W], and keep that shape
convention; coordinates are continuous pixels (x, y) with pixel j covering [j, j+1); boxes are
XYXY [N, 4]; polygons are flat float64 [x0, y0, x1, y1, ...]; bit masks are bool [N, H, W];
label maps (semantic segmentation) are integer [H, W]; keypoints are [N, K, 3] = (x, y, v).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}


def pil_resample(interp: str | int) -> Image.Resampling:
    """The Pillow filter for `interp`: "nearest", "bilinear", "bicubic", or Pillow's own constant
    (``Image.BILINEAR``, as Detectron2 recipes pass). Other numbers are refused: Detectron2's
    rotation takes OpenCV flags, where 1 is INTER_LINEAR but Pillow's 1 is LANCZOS."""
    if isinstance(interp, str) and interp in INTERPOLATIONS:
        return INTERPOLATIONS[interp]
    if isinstance(interp, int) and interp in INTERPOLATIONS.values():
        return Image.Resampling(interp)
    raise ValueError(f"interp must be one of {sorted(INTERPOLATIONS)} or Pillow's Image.NEAREST/BILINEAR/BICUBIC "
                     f"(0/2/3), got {interp!r}")


def apply_pil(img: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Apply a Pillow operation to an image array, keeping its shape convention.

    `img`: [H, W], [H, W, 1] or [H, W, C]; uint8, or float32 (run per channel in Pillow's "F"
    mode). Pillow has no one-channel 3-D arrays and no multi-channel float mode, so those go
    channel by channel; uint8 RGB/RGBA goes through in one call.
    """
    if img.ndim == 3 and (img.shape[2] not in (3, 4) or img.dtype != np.uint8):
        return np.stack([apply_pil(img[:, :, c], fn) for c in range(img.shape[2])], axis=2)
    return np.asarray(fn(Image.fromarray(img)))


class Transform:
    """Base: subclasses implement apply_image, apply_coords and apply_masks; the rest derive from those.

    Method names follow Detectron2's (apply_image, apply_coords, apply_box, apply_polygons,
    apply_segmentation, inverse); `apply_masks` and `apply_keypoints` are detrun's batched forms.
    """

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Map points float [N, 2] (x, y)."""
        raise NotImplementedError

    def apply_masks(self, masks: np.ndarray) -> np.ndarray:
        """Map bool masks [N, H, W] to the output image's grid."""
        raise NotImplementedError

    def apply_box(self, boxes: np.ndarray) -> np.ndarray:
        """Map XYXY boxes [N, 4]: the box around the 4 mapped corners."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        corners = boxes[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 2)
        mapped = self.apply_coords(corners).reshape(-1, 4, 2)
        return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        """Map one object's polygons (flat [2P] arrays); a polygon may vanish (e.g. cropped away)."""
        return [self.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)).reshape(-1) for p in polygons]

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Map a label map [H, W] (any integer dtype) to the output grid, without interpolating.

        Where the output has no source pixel (padding, rotation corners), transforms that create
        such pixels fill 255, the usual "ignore" label (see `PadTransform`, `AffineTransform`).
        """
        return self.apply_masks(np.asarray(segmentation)[None])[0]

    def apply_keypoints(self, keypoints: np.ndarray) -> np.ndarray:
        """Map keypoints [N, K, 3]; visibility is kept (`transform_instance_annotations` zeroes points
        that leave the image)."""
        out = np.array(keypoints, dtype=np.float64)
        if out.size:
            out[..., :2] = self.apply_coords(out[..., :2].reshape(-1, 2)).reshape(out.shape[:-1] + (2,))
        return out

    def inverse(self) -> Transform:
        """The transform that maps outputs back (for coordinates; images lose what was cut or resampled)."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")


class NoOpTransform(Transform):
    """Identity."""

    def apply_image(self, img):
        return img

    def apply_coords(self, coords):
        return coords

    def apply_masks(self, masks):
        return masks

    def inverse(self):
        return self


class ResizeTransform(Transform):
    """Resize from (h, w) to (new_h, new_w): coordinates scale by new_w / w and new_h / h.

    `interp`: see `pil_resample`. Images [H, W], [H, W, 1] and [H, W, 3] keep their shape convention.
    """

    def __init__(self, *, h: int, w: int, new_h: int, new_w: int, interp: str | int = "bilinear"):
        self.resample = pil_resample(interp)
        self.h, self.w, self.new_h, self.new_w, self.interp = h, w, new_h, new_w, interp

    def apply_image(self, img):
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"ResizeTransform expects a {self.h}x{self.w} image, got {img.shape[:2]}")
        if (self.h, self.w) == (self.new_h, self.new_w):
            return img
        return apply_pil(img, lambda im: im.resize((self.new_w, self.new_h), self.resample))

    def apply_coords(self, coords):
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] *= self.new_w / self.w
        coords[:, 1] *= self.new_h / self.h
        return coords

    def apply_masks(self, masks):
        # Nearest neighbour by pixel centre: output pixel i samples input pixel floor((i + 0.5) * h / new_h).
        rows = np.minimum(((np.arange(self.new_h) + 0.5) * self.h / self.new_h).astype(np.int64), self.h - 1)
        cols = np.minimum(((np.arange(self.new_w) + 0.5) * self.w / self.new_w).astype(np.int64), self.w - 1)
        return masks[:, rows][:, :, cols]

    def apply_segmentation(self, segmentation):
        # Pillow's own nearest neighbour (on int32 labels), so a label map stays aligned with an
        # image resized with interp="nearest" even where a pixel centre falls exactly on a source
        # pixel edge (Pillow's rounding there differs from the float rule in apply_masks).
        if (self.h, self.w) == (self.new_h, self.new_w):
            return segmentation
        segmentation = np.asarray(segmentation)
        if segmentation.min(initial=0) < np.iinfo(np.int32).min or segmentation.max(initial=0) > np.iinfo(np.int32).max:
            return super().apply_segmentation(segmentation)
        resized = Image.fromarray(segmentation.astype(np.int32)).resize((self.new_w, self.new_h), Image.Resampling.NEAREST)
        return np.asarray(resized).astype(segmentation.dtype)

    def inverse(self):
        return ResizeTransform(h=self.new_h, w=self.new_w, new_h=self.h, new_w=self.w, interp=self.interp)


class HFlipTransform(Transform):
    """Mirror left-right in an image of `width`: x → width - x; keypoints also swap left/right names
    through `keypoint_flip_indices` (new keypoint k = old keypoint indices[k])."""

    def __init__(self, *, width: int, keypoint_flip_indices: Sequence[int] | None = None):
        self.width = width
        self.keypoint_flip_indices = list(keypoint_flip_indices) if keypoint_flip_indices is not None else None

    def apply_image(self, img):
        return img[:, ::-1]

    def apply_coords(self, coords):
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] = self.width - coords[:, 0]
        return coords

    def apply_masks(self, masks):
        return masks[:, :, ::-1]

    def apply_keypoints(self, keypoints):
        out = super().apply_keypoints(keypoints)
        if self.keypoint_flip_indices is not None and out.size:
            if len(self.keypoint_flip_indices) != out.shape[1]:
                raise ValueError(f"keypoint_flip_indices has {len(self.keypoint_flip_indices)} entries for "
                                 f"{out.shape[1]} keypoints")
            out = out[:, self.keypoint_flip_indices]
        return out

    def inverse(self):
        return self


class VFlipTransform(HFlipTransform):
    """Mirror top-bottom in an image of `height`: y → height - y (keypoints permuted like HFlip)."""

    def __init__(self, *, height: int, keypoint_flip_indices: Sequence[int] | None = None):
        super().__init__(width=height, keypoint_flip_indices=keypoint_flip_indices)

    def apply_image(self, img):
        return img[::-1]

    def apply_coords(self, coords):
        coords = np.array(coords, dtype=np.float64)
        coords[:, 1] = self.width - coords[:, 1]
        return coords

    def apply_masks(self, masks):
        return masks[:, ::-1]


class CropTransform(Transform):
    """Keep the window x in [x0, x0 + w), y in [y0, y0 + h); coordinates shift by (-x0, -y0).

    Polygons are clipped to the window (parts outside are cut off, not just moved); boxes are
    shifted only, `transform_instance_annotations` clips them to the image.
    """

    def __init__(self, *, x0: int, y0: int, w: int, h: int):
        self.x0, self.y0, self.w, self.h = int(x0), int(y0), int(w), int(h)

    def apply_image(self, img):
        return img[self.y0: self.y0 + self.h, self.x0: self.x0 + self.w]

    def apply_coords(self, coords):
        return np.asarray(coords, dtype=np.float64) - (self.x0, self.y0)

    def apply_masks(self, masks):
        return masks[:, self.y0: self.y0 + self.h, self.x0: self.x0 + self.w]

    def apply_polygons(self, polygons):
        out = []
        for p in polygons:
            pts = clip_polygon(np.asarray(p, dtype=np.float64).reshape(-1, 2),
                               self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)
            if len(pts) >= 3 and _area(pts) > 0:
                out.append((pts - (self.x0, self.y0)).reshape(-1))
        return out


class PadTransform(Transform):
    """Pad `pad_w` columns on the right and `pad_h` rows at the bottom (coordinates unchanged).

    Images get `pad_value`, bit masks False, label maps `seg_pad_value` (default 255, "ignore";
    Detectron2's PadTransform defaults to 0, which is a real class in most label maps).
    """

    def __init__(self, *, pad_w: int, pad_h: int, pad_value: float = 0.0, seg_pad_value: int = 255):
        self.pad_w, self.pad_h, self.pad_value, self.seg_pad_value = int(pad_w), int(pad_h), pad_value, seg_pad_value

    def apply_image(self, img):
        pad = [(0, self.pad_h), (0, self.pad_w)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, pad, constant_values=np.asarray(self.pad_value).astype(img.dtype))

    def apply_coords(self, coords):
        return coords

    def apply_masks(self, masks):
        return np.pad(masks, [(0, 0), (0, self.pad_h), (0, self.pad_w)])

    def apply_segmentation(self, segmentation):
        return np.pad(segmentation, [(0, self.pad_h), (0, self.pad_w)], constant_values=self.seg_pad_value)


class BlendTransform(Transform):
    """Photometric: ``src_weight * src_image + dst_weight * image`` (geometry unchanged).

    `src_image`: a number or an array broadcastable to the image ([H, W, 1] grey, [H, W, C]).
    uint8 images are rounded and clipped to [0, 255] (Detectron2 truncates, darkening by half a
    level on average); other dtypes are returned unclipped.
    """

    def __init__(self, *, src_image: float | np.ndarray, src_weight: float, dst_weight: float):
        self.src_image, self.src_weight, self.dst_weight = src_image, src_weight, dst_weight

    def apply_image(self, img):
        out = self.src_weight * np.asarray(self.src_image, dtype=np.float32) + self.dst_weight * img.astype(np.float32)
        if img.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out

    def apply_coords(self, coords):
        return coords

    def apply_masks(self, masks):
        return masks

    def inverse(self):
        # As in Detectron2: only geometry is inverted (test-time augmentation maps boxes back).
        return NoOpTransform()


class TransformList(Transform):
    """Several transforms applied in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = []
        for t in transforms:  # flatten nested lists so isinstance checks see every transform
            self.transforms.extend(t.transforms if isinstance(t, TransformList) else [t])

    def _chain(self, method: str, x):
        for t in self.transforms:
            x = getattr(t, method)(x)
        return x

    def apply_image(self, img):
        return self._chain("apply_image", img)

    def apply_coords(self, coords):
        return self._chain("apply_coords", coords)

    def apply_masks(self, masks):
        return self._chain("apply_masks", masks)

    def apply_box(self, boxes):
        return self._chain("apply_box", boxes)

    def apply_polygons(self, polygons):
        return self._chain("apply_polygons", polygons)

    def apply_segmentation(self, segmentation):
        return self._chain("apply_segmentation", segmentation)

    def apply_keypoints(self, keypoints):
        return self._chain("apply_keypoints", keypoints)

    def inverse(self):
        return TransformList([t.inverse() for t in reversed(self.transforms)])


def clip_polygon(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland–Hodgman: the part of polygon `pts` [P, 2] inside the rectangle, as [Q, 2] (Q may be 0)."""
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if len(pts) == 0:
            break
        nxt = np.roll(pts, -1, axis=0)
        inside = pts[:, axis] >= bound if keep_above else pts[:, axis] <= bound
        nxt_inside = np.roll(inside, -1)
        crosses = inside != nxt_inside
        delta = nxt[:, axis] - pts[:, axis]
        t = np.where(crosses, (bound - pts[:, axis]) / np.where(crosses, delta, 1.0), 0.0)
        cut = pts + t[:, None] * (nxt - pts)
        cut[crosses, axis] = bound  # exactly on the edge despite rounding
        # Per input vertex: the vertex itself if inside, then the crossing point if the edge leaves/enters.
        candidates = np.stack([pts, cut], axis=1).reshape(-1, 2)
        keep = np.stack([inside, crosses], axis=1).reshape(-1)
        pts = candidates[keep]
    return pts


def _area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
