"""The Cityscapes label table (the public definition in the Cityscapes scripts' ``labels.py``) as data.

Each label: name, id (the value in ``*_gtFine_labelIds.png``), train id (0..18 for the 19
evaluated classes, 255 ignored; license plate's -1 too), category, whether it has instances,
whether evaluation ignores it, and its colour. ``*_gtFine_instanceIds.png`` holds
``id * 1000 + k`` for the k-th instance of a class with instances, the plain id otherwise.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

IGNORE_LABEL = 255


class Label(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


LABELS = [Label(*row) for row in [
    ("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    ("static", 4, 255, "void", False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    ("person", 24, 11, "human", True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
]]
NAME_TO_LABEL = {label.name: label for label in LABELS}
ID_TO_LABEL = {label.id: label for label in LABELS}

# The 19 evaluated classes in train-id order (semantic segmentation's classes).
STUFF_LABELS = sorted((label for label in LABELS if not label.ignore_in_eval), key=lambda label: label.train_id)
# The 8 evaluated classes with instances, in id order (instance segmentation's classes).
THING_LABELS = [label for label in LABELS if label.has_instances and not label.ignore_in_eval]


def label_id_to_train_id_table() -> np.ndarray:
    """uint8 [256] lookup: a ``labelIds`` PNG value → its train id (255 for ignored and unknown values)."""
    table = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for label in LABELS:
        if label.id >= 0 and label.train_id >= 0:
            table[label.id] = label.train_id
    return table


def train_id_to_label_id_table() -> np.ndarray:
    """uint8 [256] lookup: a train id 0..18 → its label id (what the official evaluation reads); 0 elsewhere."""
    table = np.zeros(256, dtype=np.uint8)
    for label in STUFF_LABELS:
        table[label.train_id] = label.id
    return table
