"""Instance masks: `BitMasks` (a bool bitmap per object) and `PolygonMasks` (COCO polygons per object).

Both give the mask-head targets with ``crop_and_resize(boxes, M)``: each object's mask cut to
its box and resampled to M×M. Polygon coordinates are COCO's: absolute pixels, pixel (i, j)
covering [j, j+1) × [i, i+1), so a pixel's centre is at (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import Boxes


def decode_rle(rle: dict | list[dict]) -> np.ndarray:
    """``pycocotools.mask.decode``, without its numpy-2 DeprecationWarning about ``__array__(copy=)``
    (raised inside pycocotools on every call; harmless, but it floods logs). uint8 ndarray[H, W(, N)]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_util.decode(rle)


def polygons_to_bitmask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize the union of one object's polygons (each flat [x0, y0, x1, y1, ...]) as pycocotools does.

    Returns bool ndarray[height, width].
    """
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_util.frPyObjects([np.asarray(p, dtype=np.float64) for p in polygons], height, width)
    return decode_rle(mask_util.merge(rles)).astype(bool)


def _check_polygon(poly: np.ndarray, where: str) -> np.ndarray:
    poly = np.asarray(poly, dtype=np.float64).reshape(-1)
    if poly.size % 2 != 0 or poly.size < 6:
        raise ValueError(f"{where}: a polygon needs >= 3 (x, y) points, got {poly.size} numbers")
    return poly


class PolygonMasks:
    """N objects, each a list of polygons (float64 ndarray [2P] = x0, y0, x1, y1, ...; union of parts).

    Cheaper than bitmaps to transform (only the points move) and rasterized exactly at target size.
    """

    def __init__(self, polygons: Sequence[Sequence[np.ndarray | Sequence[float]]]):
        if not isinstance(polygons, (list, tuple)):
            raise TypeError(f"PolygonMasks takes a list (objects) of lists (polygons), got {type(polygons)}")
        self.polygons: list[list[np.ndarray]] = []
        for i, obj in enumerate(polygons):
            if not isinstance(obj, (list, tuple)):
                raise TypeError(f"PolygonMasks: object {i} must be a list of polygons, got {type(obj)}")
            self.polygons.append([_check_polygon(p, f"PolygonMasks object {i}") for p in obj])

    def to(self, *args, **kwargs) -> PolygonMasks:
        """Polygons live on the CPU as numpy; returns self."""
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        """Tight XYXY box around each object's points, Boxes[N]."""
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for i, obj in enumerate(self.polygons):
            if obj:
                pts = np.concatenate(obj).reshape(-1, 2)
                boxes[i] = torch.as_tensor([*pts.min(axis=0), *pts.max(axis=0)], dtype=torch.float32)
        return Boxes(boxes)

    def nonempty(self) -> Tensor:
        """Bool Tensor[N]: True for objects with at least one polygon."""
        return torch.as_tensor([len(obj) > 0 for obj in self.polygons], dtype=torch.bool)

    def area(self) -> Tensor:
        """Polygon area of each object (shoelace, parts summed, overlaps not removed), float32 Tensor[N]."""
        areas = []
        for obj in self.polygons:
            total = 0.0
            for p in obj:
                x, y = p[0::2], p[1::2]
                total += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            areas.append(total)
        return torch.as_tensor(areas, dtype=torch.float32)

    def __getitem__(self, item) -> PolygonMasks:
        if isinstance(item, int):
            return PolygonMasks([self.polygons[item]])
        if isinstance(item, slice):
            return PolygonMasks(self.polygons[item])
        if isinstance(item, list):
            return PolygonMasks([self.polygons[i] for i in item])
        item = torch.as_tensor(item)
        if item.dtype == torch.bool:
            if item.numel() != len(self):
                raise IndexError(f"bool mask of length {item.numel()} for {len(self)} PolygonMasks")
            item = item.nonzero().flatten()
        return PolygonMasks([self.polygons[i] for i in item.tolist()])

    def __len__(self) -> int:
        return len(self.polygons)

    def __iter__(self):
        yield from self.polygons

    def __repr__(self) -> str:
        return f"PolygonMasks(num_instances={len(self)})"

    @staticmethod
    def cat(masks_list: Sequence[PolygonMasks]) -> PolygonMasks:
        return PolygonMasks([obj for m in masks_list for obj in m.polygons])

    def crop_and_resize(self, boxes: Tensor, mask_size: int) -> Tensor:
        """Rasterize object i's polygons inside ``boxes[i]`` (XYXY, Tensor[N, 4]) onto an M×M grid.

        Returns bool Tensor[N, M, M] on `boxes`' device.
        """
        if len(boxes) != len(self):
            raise ValueError(f"crop_and_resize: {len(boxes)} boxes for {len(self)} masks")
        device = boxes.device
        boxes_np = boxes.detach().to("cpu", torch.float64).numpy()
        out = np.zeros((len(self), mask_size, mask_size), dtype=bool)
        for i, (obj, box) in enumerate(zip(self.polygons, boxes_np)):
            # Map the box to [0, M] x [0, M]; a degenerate box gets a tiny size instead of a /0.
            w = max(box[2] - box[0], 1e-6)
            h = max(box[3] - box[1], 1e-6)
            scaled = []
            for p in obj:
                q = p.copy()
                q[0::2] = (q[0::2] - box[0]) * (mask_size / w)
                q[1::2] = (q[1::2] - box[1]) * (mask_size / h)
                scaled.append(q)
            out[i] = polygons_to_bitmask(scaled, mask_size, mask_size)
        return torch.from_numpy(out).to(device)


class BitMasks:
    """N objects as a bool Tensor[N, H, W] (H, W = the image's size)."""

    def __init__(self, tensor: Tensor | np.ndarray):
        device = tensor.device if isinstance(tensor, Tensor) else torch.device("cpu")
        tensor = torch.as_tensor(tensor, dtype=torch.bool, device=device)
        if tensor.dim() != 3:
            raise ValueError(f"BitMasks needs a [N, H, W] tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor
        self.image_size = tuple(tensor.shape[1:])

    @staticmethod
    def from_polygon_masks(polygon_masks: PolygonMasks | Sequence, height: int, width: int) -> BitMasks:
        """Rasterize PolygonMasks (or a list of per-object polygon lists) to BitMasks[N, height, width]."""
        polygons = polygon_masks.polygons if isinstance(polygon_masks, PolygonMasks) else polygon_masks
        if len(polygons) == 0:
            return BitMasks(torch.zeros(0, height, width, dtype=torch.bool))
        return BitMasks(np.stack([polygons_to_bitmask(obj, height, width) for obj in polygons]))

    def to(self, *args, **kwargs) -> BitMasks:
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item) -> BitMasks:
        if isinstance(item, int):
            return BitMasks(self.tensor[item].unsqueeze(0))
        selected = self.tensor[item]
        if selected.dim() != 3:
            raise IndexError(f"indexing BitMasks with {item!r} did not give a [N, H, W] tensor")
        return BitMasks(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self):
        yield from self.tensor

    def __repr__(self) -> str:
        return f"BitMasks(num_instances={len(self)}, image_size={self.image_size})"

    @staticmethod
    def cat(masks_list: Sequence[BitMasks]) -> BitMasks:
        return BitMasks(torch.cat([m.tensor for m in masks_list], dim=0))

    def nonempty(self) -> Tensor:
        """Bool Tensor[N]: True for masks with at least one pixel set."""
        return self.tensor.flatten(1).any(dim=1)

    def area(self) -> Tensor:
        """Pixel count of each mask, int64 Tensor[N]."""
        return self.tensor.flatten(1).sum(dim=1)

    def get_bounding_boxes(self) -> Boxes:
        """Tight XYXY box around each mask's pixels (pixel edges, so one pixel at (x, y) gives
        (x, y, x+1, y+1)); all zeros for an empty mask. Boxes[N]."""
        boxes = torch.zeros(len(self), 4, dtype=torch.float32, device=self.device)
        cols = self.tensor.any(dim=1)  # [N, W]
        rows = self.tensor.any(dim=2)  # [N, H]
        for i in range(len(self)):
            x = torch.where(cols[i])[0]
            y = torch.where(rows[i])[0]
            if len(x) and len(y):
                boxes[i] = torch.stack([x[0], y[0], x[-1] + 1, y[-1] + 1]).float()
        return Boxes(boxes)

    def crop_and_resize(self, boxes: Tensor, mask_size: int) -> Tensor:
        """Cut mask i to ``boxes[i]`` (XYXY pixels, Tensor[N, 4]) and resample it to M×M.

        Bilinear sampling at 2×2 points per output cell, averaged (RoIAlign with aligned=True,
        sampling_ratio=2), then thresholded at 0.5. Returns bool Tensor[N, M, M] on `boxes`' device.
        """
        n = len(self)
        if len(boxes) != n:
            raise ValueError(f"crop_and_resize: {len(boxes)} boxes for {n} masks")
        device = boxes.device
        if n == 0:
            return torch.zeros(0, mask_size, mask_size, dtype=torch.bool, device=device)
        h, w = self.image_size
        s = 2 * mask_size
        boxes = boxes.to(device=device, dtype=torch.float32)
        steps = (torch.arange(s, device=device, dtype=torch.float32) + 0.5) / s  # sample positions in [0, 1]
        # Sample points in pixel coordinates, then in grid_sample's normalized [-1, 1] (pixel centre i+0.5).
        xs = boxes[:, 0:1] + steps[None] * (boxes[:, 2:3] - boxes[:, 0:1])
        ys = boxes[:, 1:2] + steps[None] * (boxes[:, 3:4] - boxes[:, 1:2])
        gx = (xs / w) * 2 - 1
        gy = (ys / h) * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [N, s, s, 2]
        masks = self.tensor.to(device=device, dtype=torch.float32)[:, None]
        sampled = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return F.avg_pool2d(sampled, 2)[:, 0] >= 0.5
