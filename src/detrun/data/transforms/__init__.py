"""Transforms (deterministic, applied to image + boxes + masks + keypoints) and augmentations (random policies)."""
from .augmentation import (
    Augmentation,
    FixedSizeCrop,
    RandomCrop,
    RandomFlip,
    ResizeScale,
    ResizeShortestEdge,
    apply_augmentations,
    keypoint_flip_indices,
)
from .transform import (
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
    "Augmentation",
    "CropTransform",
    "FixedSizeCrop",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "RandomCrop",
    "RandomFlip",
    "ResizeScale",
    "ResizeShortestEdge",
    "ResizeTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "clip_polygon",
    "keypoint_flip_indices",
]
