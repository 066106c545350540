"""`Instances`: the per-image set of objects (ground truth, proposals or predictions) as named fields."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch


class Instances:
    """N objects of one image of size `image_size` = (height, width), each field of length N.

    Fields are set and read as attributes (``inst.gt_boxes = Boxes(...)``); every field must
    support ``len`` and indexing (Tensor, Boxes, masks, Keypoints, list). Indexing an Instances
    indexes every field the same way::

        keep = inst.scores > 0.5
        inst = inst[keep]
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any):
        self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image these objects belong to, in pixels."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for fields.
        fields = self.__dict__.get("_fields", {})
        if name not in fields:
            raise AttributeError(f"Instances has no field '{name}'; its fields are {sorted(fields)}")
        return fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set field `name`; its length must match the existing fields'."""
        n = len(value)
        if self._fields and n != len(self):
            raise ValueError(f"field '{name}' has length {n}, but this Instances has {len(self)} objects")
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        """The name → value dict of fields (the live dict, not a copy)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """A copy with every field that has a ``.to`` moved (`args` as for ``Tensor.to``)."""
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            if hasattr(value, "to"):
                value = value.to(*args, **kwargs)
            out.set(name, value)
        return out

    def __getitem__(self, item) -> Instances:
        """Index every field: int, slice, bool mask or index tensor."""
        if isinstance(item, int):
            if item >= len(self) or item < -len(self):
                raise IndexError(f"Instances index {item} out of range for {len(self)} objects")
            item = slice(item, None, len(self)) if item != -1 else slice(item, None)
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            out.set(name, _index_list(value, item) if isinstance(value, list) else value[item])
        return out

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    def __iter__(self):
        raise NotImplementedError("Instances is not iterable; index it or read its fields")

    @staticmethod
    def cat(instance_lists: Sequence[Instances]) -> Instances:
        """Concatenate Instances of one image (same image_size and field names) along the object axis."""
        if not instance_lists:
            raise ValueError("Instances.cat needs at least one Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]
        image_size = instance_lists[0].image_size
        for inst in instance_lists[1:]:
            if inst.image_size != image_size:
                raise ValueError(f"Instances.cat: image sizes differ ({image_size} vs {inst.image_size})")
        out = Instances(image_size)
        for name, first in instance_lists[0]._fields.items():
            values = [inst.get(name) for inst in instance_lists]
            if isinstance(first, torch.Tensor):
                joined = torch.cat(values, dim=0)
            elif isinstance(first, list):
                joined = list(itertools.chain(*values))
            elif hasattr(type(first), "cat"):
                joined = type(first).cat(values)
            else:
                raise TypeError(f"Instances.cat: don't know how to concatenate field '{name}' of type {type(first)}")
            out.set(name, joined)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {_describe(v)}" for k, v in self._fields.items())
        return f"Instances(num_instances={len(self)}, image_height={self._image_size[0]}, " \
               f"image_width={self._image_size[1]}, fields=[{fields}])"


def _index_list(values: list, item) -> list:
    """Index a plain list like a tensor (slice, bool mask or index tensor/list)."""
    if isinstance(item, slice):
        return values[item]
    item = torch.as_tensor(item)
    if item.dtype == torch.bool:
        item = item.nonzero().flatten()
    return [values[i] for i in item.tolist()]


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor{list(value.shape)} {value.dtype}"
    return f"{type(value).__name__}[{len(value)}]"
