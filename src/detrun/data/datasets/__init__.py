"""Data set loaders and the built-in names (registered when `detrun.data` is imported)."""
from .ade20k import load_ade20k_sem_seg, register_ade20k_sem_seg
from .builtin import COCO_2017, register_all_builtin
from .cityscapes import load_cityscapes_instances, load_cityscapes_semantic, register_cityscapes
from .coco import load_coco_json, register_coco_instances
from .coco_panoptic import load_coco_panoptic, register_coco_panoptic
from .lvis import load_lvis_json, register_lvis_instances
from .pascal_voc import load_voc_instances, register_pascal_voc
from .paths import datasets_root
from .shapes import ensure_shapes, register_shapes, shapes_dataset
from .shapes_panoptic import register_shapes_panoptic, shapes_panoptic_dataset

__all__ = [
    "COCO_2017",
    "datasets_root",
    "ensure_shapes",
    "load_ade20k_sem_seg",
    "load_cityscapes_instances",
    "load_cityscapes_semantic",
    "load_coco_json",
    "load_coco_panoptic",
    "load_voc_instances",
    "load_lvis_json",
    "register_ade20k_sem_seg",
    "register_all_builtin",
    "register_cityscapes",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_pascal_voc",
    "register_lvis_instances",
    "register_shapes",
    "register_shapes_panoptic",
    "shapes_dataset",
    "shapes_panoptic_dataset",
]
