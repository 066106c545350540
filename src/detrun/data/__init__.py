"""Data: catalog, data set loaders (COCO, shapes), transforms, mapper, samplers, loaders.

A record (one image) is ``{file_name, height, width, image_id, annotations: [{bbox, bbox_mode,
category_id (contiguous 0..C-1), segmentation, keypoints, iscrowd, id}]}``; the mapper turns it
into ``{image: uint8 Tensor[3, H, W], instances: Instances, height, width, image_id, file_name}``.
"""
from .catalog import DatasetCatalog, Metadata, MetadataCatalog, UnknownDatasetError
from .datasets import load_coco_json, register_all_builtin, register_coco_instances, shapes_dataset
from .problems import DataError, DatasetNotFoundError

register_all_builtin()

__all__ = [
    "DataError",
    "DatasetCatalog",
    "DatasetNotFoundError",
    "Metadata",
    "MetadataCatalog",
    "UnknownDatasetError",
    "load_coco_json",
    "register_all_builtin",
    "register_coco_instances",
    "shapes_dataset",
]
