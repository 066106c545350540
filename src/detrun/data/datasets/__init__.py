"""Data set loaders and the built-in names (registered when `detrun.data` is imported)."""
from .builtin import COCO_2017, register_all_builtin
from .coco import load_coco_json, register_coco_instances
from .paths import datasets_root
from .shapes import ensure_shapes, register_shapes, shapes_dataset

__all__ = [
    "COCO_2017",
    "datasets_root",
    "ensure_shapes",
    "load_coco_json",
    "register_all_builtin",
    "register_coco_instances",
    "register_shapes",
    "shapes_dataset",
]
