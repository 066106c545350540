"""Draw one synthetic "shapes" image: circles, squares and triangles on a textured background.

Everything is decided by the `rng` passed in, so an image is a pure function of (seed, index).
Objects are rasterized by pixel centre (pixel (i, j) belongs to a shape if (j + 0.5, i + 0.5) is
inside it) into a label map, painted back to front; an object's mask is exactly the pixels that
show it. Squares are axis-aligned and triangles have a horizontal base with the apex on top, so
keypoint names (top_left, ...) mean the same thing on every object.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

CLASSES = ("circle", "square", "triangle")
KEYPOINT_NAMES = ("center", "top", "top_left", "top_right", "bottom_left", "bottom_right")
KEYPOINT_FLIP_MAP = (("top_left", "top_right"), ("bottom_left", "bottom_right"))
# Objects need colours this far (Euclidean, 0..255 RGB) from the background mean and from each
# other, so every boundary is visible: the data set tests detection, not contrast perception.
MIN_COLOR_DISTANCE = 90.0


@dataclass(frozen=True)
class Shape:
    """One object: class index into CLASSES and its geometry in continuous pixel coordinates."""

    cls: int
    x0: float
    y0: float
    x1: float
    y1: float
    apex_x: float = 0.0  # triangles only

    def contains(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Bool array: which points (x, y) lie inside the shape."""
        if CLASSES[self.cls] == "circle":
            cx, cy, r = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2, (self.x1 - self.x0) / 2
            return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        inside = (xs >= self.x0) & (xs < self.x1) & (ys >= self.y0) & (ys < self.y1)
        if CLASSES[self.cls] == "triangle":
            # Left edge apex → bottom-left, right edge apex → bottom-right; inside is between them.
            h = self.y1 - self.y0
            t = (ys - self.y0) / h
            inside &= (xs >= self.apex_x + t * (self.x0 - self.apex_x)) & (xs <= self.apex_x + t * (self.x1 - self.apex_x))
        return inside

    def keypoints(self) -> np.ndarray:
        """[K, 3] (x, y, v) with v = 2 for this class's points (circle: centre; others: corners), else 0."""
        kp = np.zeros((len(KEYPOINT_NAMES), 3))
        name = CLASSES[self.cls]
        if name == "circle":
            points = {"center": ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)}
        elif name == "square":
            points = {"top_left": (self.x0, self.y0), "top_right": (self.x1, self.y0),
                      "bottom_left": (self.x0, self.y1), "bottom_right": (self.x1, self.y1)}
        else:
            points = {"top": (self.apex_x, self.y0), "bottom_left": (self.x0, self.y1), "bottom_right": (self.x1, self.y1)}
        for key, (x, y) in points.items():
            kp[KEYPOINT_NAMES.index(key)] = (x, y, 2)
        return kp

    def window(self, size: int) -> tuple[slice, slice]:
        """Pixel rows/cols that can contain the shape."""
        return (slice(max(int(self.y0), 0), min(int(np.ceil(self.y1)) + 1, size)),
                slice(max(int(self.x0), 0), min(int(np.ceil(self.x1)) + 1, size)))


@dataclass
class RenderedObject:
    """A visible object of a rendered image: class, exact visible mask [H, W], keypoints [K, 3]."""

    cls: int
    mask: np.ndarray
    keypoints: np.ndarray


def _random_shape(rng: np.random.Generator, size: int, min_size: int, max_size: int) -> Shape:
    cls = int(rng.integers(len(CLASSES)))
    w = rng.uniform(min_size, max_size)
    h = w if CLASSES[cls] != "triangle" else w * rng.uniform(0.8, 1.15)
    h = min(h, size - 1)
    x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
    return Shape(cls, x0, y0, x0 + w, y0 + h, apex_x=rng.uniform(x0, x0 + w))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float [H, W, 3] texture: smooth colour blobs + stripes + pixel noise."""
    coarse = rng.uniform(30, 225, (4, 4, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    coords = np.arange(size, dtype=np.float32) * np.float32(2 * np.pi / period)
    stripes = np.sin(coords[None, :] * np.float32(np.cos(angle)) + coords[:, None] * np.float32(np.sin(angle)))
    img += (rng.uniform(5, 25) * stripes)[..., None]
    return img


def _pick_color(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    best, best_dist = None, -1.0
    for _ in range(30):
        color = rng.uniform(0, 255, 3)
        dist = min(float(np.linalg.norm(color - a)) for a in avoid)
        if dist >= MIN_COLOR_DISTANCE:
            return color
        if dist > best_dist:
            best, best_dist = color, dist
    return best


def render_image(rng: np.random.Generator, *, image_size: int, min_objects: int, max_objects: int,
                 min_size: float, max_size: float, occlusion_prob: float,
                 max_occluded_fraction: float,
                 background: Callable[[np.random.Generator, int], np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, list[RenderedObject]]:
    """Render one image. Returns (uint8 RGB [S, S, 3], visible objects back to front).

    Each new object either avoids all earlier ones or (with probability `occlusion_prob`) may
    cover them, as long as no object loses more than `max_occluded_fraction` of its area.
    `background(rng, size)` paints the float [S, S, 3] background (default: `_background`'s
    texture); the panoptic variant passes one that also records its stuff regions.
    """
    size = image_size
    label = np.full((size, size), -1, dtype=np.int16)
    shapes: list[Shape] = []
    full_area: list[int] = []
    target = int(rng.integers(min_objects, max_objects + 1))
    ys_c = np.arange(size, dtype=np.float64) + 0.5
    for _ in range(target * 25):
        if len(shapes) == target:
            break
        shape = _random_shape(rng, size, min_size, max_size)
        rows, cols = shape.window(size)
        inside = shape.contains(ys_c[cols][None, :], ys_c[rows][:, None])
        under = label[rows, cols][inside]
        covered = under[under >= 0]
        if covered.size:
            if rng.random() >= occlusion_prob:
                continue
            lost = np.bincount(covered, minlength=len(shapes))
            visible = np.bincount(label[label >= 0], minlength=len(shapes))
            if np.any(visible - lost < (1 - max_occluded_fraction) * np.asarray(full_area)):
                continue
        label[rows, cols][inside] = len(shapes)  # basic slicing gives a view: this writes into `label`
        shapes.append(shape)
        full_area.append(int(inside.sum()))

    img = (background or _background)(rng, size)
    avoid = [img.reshape(-1, 3).mean(axis=0)]
    objects = []
    for idx, shape in enumerate(shapes):
        mask = label == idx
        color = _pick_color(rng, avoid)
        avoid.append(color)
        img[mask] = color
        kp = shape.keypoints()
        labelled = kp[:, 2] > 0
        for front in shapes[idx + 1:]:
            hidden = labelled & front.contains(kp[:, 0], kp[:, 1])
            kp[hidden, 2] = 1
        objects.append(RenderedObject(shape.cls, mask, kp))
    # Uniform pixel noise in [-5, 5] from raw bytes (10x cheaper than rng.normal); stronger noise makes
    # the PNGs incompressible and slower to write (4.6 vs 3.5 ms per image at ±11).
    noise = np.frombuffer(rng.bytes(img.size), dtype=np.uint8).reshape(img.shape).astype(np.float32)
    img += (noise - np.float32(127.5)) * np.float32(5 / 127.5)
    return np.clip(img, 0, 255).astype(np.uint8), objects
