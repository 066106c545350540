"""Per-image data structures shared by data, models and evaluation (Detectron2-compatible API).

No I/O here: these are containers with the geometry every part agrees on.
"""
from .boxes import Boxes, BoxMode, pairwise_intersection, pairwise_ioa, pairwise_iou
from .image_list import ImageList
from .instances import Instances
from .keypoints import Keypoints
from .masks import BitMasks, PolygonMasks, decode_rle, polygons_to_bitmask

__all__ = [
    "BitMasks",
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "Keypoints",
    "PolygonMasks",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "decode_rle",
    "polygons_to_bitmask",
]
