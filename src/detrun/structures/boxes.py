"""Axis-aligned boxes: `BoxMode` conversions, the `Boxes` container and pairwise IoU.

Coordinates are absolute pixels, XYXY = (x0, y0, x1, y1) with x1 >= x0 for a valid box.
A box's width is ``x1 - x0`` (continuous coordinates: a box covering pixel columns 0..9
is (0, 0, 10, ...)), as in Detectron2 and torchvision.
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
import torch
from torch import Tensor

BoxLike = Tensor | np.ndarray | Sequence[float]


class BoxMode(IntEnum):
    """How the four numbers of a box are laid out (values match Detectron2's, so records interoperate).

    XYXY_ABS: (x0, y0, x1, y1) in pixels.  XYWH_ABS: (x0, y0, width, height) in pixels (COCO).
    """

    XYXY_ABS = 0
    XYWH_ABS = 1

    @staticmethod
    def convert(box: BoxLike, from_mode: BoxMode, to_mode: BoxMode) -> BoxLike:
        """Convert one box (4 numbers) or a batch (Tensor/ndarray [N, 4]) between modes.

        Returns the same kind of object it was given (list/tuple/ndarray/Tensor); arrays are copied.
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        original_type = type(box)
        single = isinstance(box, (list, tuple))
        if single:
            if len(box) != 4:
                raise ValueError(f"BoxMode.convert needs 4 numbers for a single box, got {box!r}")
            arr = torch.tensor([list(box)], dtype=torch.float64)
        elif isinstance(box, np.ndarray):
            arr = torch.from_numpy(np.asarray(box)).clone()
        else:
            arr = box.clone()
        if arr.shape[-1] != 4:
            raise ValueError(f"BoxMode.convert needs boxes of shape [N, 4], got {tuple(arr.shape)}")
        if to_mode == BoxMode.XYXY_ABS:  # from XYWH
            arr[..., 2] += arr[..., 0]
            arr[..., 3] += arr[..., 1]
        else:  # XYXY -> XYWH
            arr[..., 2] -= arr[..., 0]
            arr[..., 3] -= arr[..., 1]
        if single:
            return original_type(arr.flatten().tolist())
        if isinstance(box, np.ndarray):
            return arr.numpy()
        return arr


class Boxes:
    """N boxes as a float32 Tensor[N, 4] in XYXY_ABS, on any device.

    Indexing with an int, slice, bool mask or index tensor returns Boxes sharing storage where
    torch indexing does.
    """

    def __init__(self, tensor: Tensor | np.ndarray | Sequence):
        """`tensor`: [N, 4] XYXY boxes (anything `torch.as_tensor` takes). An empty input gives [0, 4]."""
        device = tensor.device if isinstance(tensor, Tensor) else torch.device("cpu")
        tensor = torch.as_tensor(tensor, dtype=torch.float32, device=device)
        if tensor.numel() == 0:
            # Reshape so an empty list / [0] / [0, 4] all give a well-formed [0, 4] tensor.
            tensor = tensor.reshape(0, 4)
        if tensor.dim() != 2 or tensor.shape[-1] != 4:
            raise ValueError(f"Boxes needs a [N, 4] tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def clone(self) -> Boxes:
        return Boxes(self.tensor.clone())

    def to(self, device: torch.device | str) -> Boxes:
        return Boxes(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> Tensor:
        """Area of each box in pixels², Tensor[N] (negative sizes are not clamped)."""
        box = self.tensor
        return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place to the image: x to [0, width], y to [0, height]. `box_size` = (height, width)."""
        if not torch.isfinite(self.tensor).all():
            raise ValueError("Boxes.clip: boxes contain inf or nan")
        h, w = box_size
        x0 = self.tensor[:, 0].clamp(min=0, max=w)
        y0 = self.tensor[:, 1].clamp(min=0, max=h)
        x1 = self.tensor[:, 2].clamp(min=0, max=w)
        y1 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x0, y0, x1, y1), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> Tensor:
        """Bool Tensor[N]: True where both width and height are > `threshold` pixels."""
        box = self.tensor
        widths = box[:, 2] - box[:, 0]
        heights = box[:, 3] - box[:, 1]
        return (widths > threshold) & (heights > threshold)

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> Tensor:
        """Bool Tensor[N]: True where the box lies within the (height, width) image, allowing
        `boundary_threshold` pixels outside."""
        h, w = box_size
        t = boundary_threshold
        b = self.tensor
        return (b[:, 0] >= -t) & (b[:, 1] >= -t) & (b[:, 2] < w + t) & (b[:, 3] < h + t)

    def get_centers(self) -> Tensor:
        """Box centres (x, y), Tensor[N, 2]."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale in place: x coordinates by `scale_x`, y by `scale_y`."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def __getitem__(self, item) -> Boxes:
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        selected = self.tensor[item]
        if selected.dim() != 2:
            raise IndexError(f"indexing Boxes with {item!r} did not give a [N, 4] tensor")
        return Boxes(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self):
        """Yield each box as a Tensor[4]."""
        yield from self.tensor

    def __repr__(self) -> str:
        return f"Boxes({self.tensor})"

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes]) -> Boxes:
        """Concatenate a list of Boxes into one (an empty list gives an empty Boxes)."""
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 4))
        if not all(isinstance(b, Boxes) for b in boxes_list):
            raise TypeError("Boxes.cat takes a list of Boxes")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> Tensor:
    """Intersection areas between every pair, Tensor[N, M] (pixels²)."""
    a, b = boxes1.tensor, boxes2.tensor
    wh = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    return wh.prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> Tensor:
    """Intersection over union between every pair of boxes, Tensor[N, M] in [0, 1].

    A pair whose union is empty (two degenerate boxes) has IoU 0.
    """
    inter = pairwise_intersection(boxes1, boxes2)
    union = boxes1.area()[:, None] + boxes2.area()[None, :] - inter
    return torch.where(inter > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> Tensor:
    """Intersection over the area of `boxes2`, Tensor[N, M] (0 where boxes2 is degenerate)."""
    inter = pairwise_intersection(boxes1, boxes2)
    area2 = boxes2.area()[None, :]
    return torch.where(inter > 0, inter / area2.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))
