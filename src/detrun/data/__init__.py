"""Data: catalog, data set loaders (COCO, shapes), transforms, mapper, samplers, loaders.

A record (one image) is ``{file_name, height, width, image_id, annotations: [{bbox, bbox_mode,
category_id (contiguous 0..C-1), segmentation, keypoints, iscrowd, id}]}``; the mapper turns it
into ``{image: uint8 Tensor[3, H, W], instances: Instances, height, width, image_id, file_name}``;
loaders yield lists of those.
"""
from .build import MapDataset, TrainLoader, build_test_loader, build_train_loader, get_dataset
from .catalog import DatasetCatalog, Metadata, MetadataCatalog, UnknownDatasetError
from .datasets import (
    datasets_root,
    load_coco_json,
    register_ade20k_sem_seg,
    register_all_builtin,
    register_cityscapes,
    register_coco_instances,
    register_coco_panoptic,
    register_lvis_instances,
    register_pascal_voc,
    register_shapes,
    register_shapes_panoptic,
    shapes_dataset,
    shapes_panoptic_dataset,
)
from .detection_utils import annotations_to_instances, filter_empty_instances, read_image, transform_instance_annotations
from .mapper import DatasetMapper
from .problems import DataError, DatasetNotFoundError
from .registrations import carry_registrations
from .samplers import InferenceSampler, RepeatFactorTrainingSampler, TrainingSampler

register_all_builtin()

__all__ = [
    "DataError",
    "DatasetCatalog",
    "DatasetMapper",
    "DatasetNotFoundError",
    "InferenceSampler",
    "MapDataset",
    "Metadata",
    "MetadataCatalog",
    "RepeatFactorTrainingSampler",
    "TrainLoader",
    "TrainingSampler",
    "UnknownDatasetError",
    "annotations_to_instances",
    "build_test_loader",
    "build_train_loader",
    "carry_registrations",
    "datasets_root",
    "filter_empty_instances",
    "get_dataset",
    "load_coco_json",
    "read_image",
    "register_ade20k_sem_seg",
    "register_all_builtin",
    "register_cityscapes",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_lvis_instances",
    "register_pascal_voc",
    "register_shapes",
    "register_shapes_panoptic",
    "shapes_dataset",
    "shapes_panoptic_dataset",
    "transform_instance_annotations",
]
