"""Transforms (deterministic, applied to image + boxes + masks + keypoints) and augmentations (random policies).

Names and semantics follow Detectron2's ``detectron2.data.transforms``; where detrun differs on
purpose, the class docstring says so.
"""
from .affine import AffineTransform, ExtentTransform, RotationTransform
from .augmentation import Augmentation, AugInput, AugmentationList, RandomApply, apply_augmentations
from .augmentation_color import RandomBrightness, RandomContrast, RandomSaturation
from .augmentation_geometry import (
    FixedSizeCrop,
    RandomCrop,
    RandomCrop_CategoryAreaConstraint,
    RandomExtent,
    RandomFlip,
    RandomRotation,
    ResizeScale,
    ResizeShortestEdge,
    keypoint_flip_indices,
)
from .transform import (
    BlendTransform,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
    clip_polygon,
)

__all__ = [
    "AffineTransform",
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "BlendTransform",
    "CropTransform",
    "ExtentTransform",
    "FixedSizeCrop",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomCrop_CategoryAreaConstraint",
    "RandomExtent",
    "RandomFlip",
    "RandomRotation",
    "RandomSaturation",
    "ResizeScale",
    "ResizeShortestEdge",
    "ResizeTransform",
    "RotationTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "clip_polygon",
    "keypoint_flip_indices",
]
