"""`DatasetMapper`: one record → one model input (image tensor + Instances)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .detection_utils import annotations_to_instances, check_image_size, read_image
from .transforms import Augmentation, apply_augmentations


class DatasetMapper:
    """Read, augment and pack one record.

    Returns ``{"image": uint8 Tensor[C, H, W] (after augmentation), "instances": Instances (training
    only), "height", "width" (original size), "image_id", "file_name"}``.

    Args:
        is_train: keep annotations (crowd ones dropped) as ``instances``; at test time they are dropped.
        augmentations: applied in order, e.g. ``[ResizeShortestEdge(...), RandomFlip()]``.
        image_format: "RGB" (default), "BGR" or "L" — whatever the model's pixel mean/std assume.
        use_instance_mask: produce gt_masks; mask_format: "polygon" (cheap to transform) or "bitmask".
        use_keypoint: produce gt_keypoints.
        recompute_boxes: gt_boxes from the masks after augmenting (use with crops).
    """

    def __init__(self, *, is_train: bool, augmentations: Sequence[Augmentation] = (), image_format: str = "RGB",
                 use_instance_mask: bool = True, mask_format: str = "polygon", use_keypoint: bool = False,
                 recompute_boxes: bool = False):
        if mask_format not in ("polygon", "bitmask"):
            raise ValueError(f"mask_format must be 'polygon' or 'bitmask', got '{mask_format}'")
        if recompute_boxes and not use_instance_mask:
            raise ValueError("recompute_boxes=True needs use_instance_mask=True (boxes are recomputed from masks)")
        self.is_train = is_train
        self.augmentations = list(augmentations)
        self.image_format = image_format
        self.mask_format = mask_format if use_instance_mask else None
        self.use_keypoint = use_keypoint
        self.recompute_boxes = recompute_boxes

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict:
        """Map `record`; `rng` drives the augmentations (a fresh unseeded one if None)."""
        rng = rng if rng is not None else np.random.default_rng()
        image = read_image(record["file_name"], self.image_format, image_id=record.get("image_id"))
        check_image_size(record, image)
        original_size = image.shape[:2]
        image, transforms = apply_augmentations(self.augmentations, image, rng)
        image_size = image.shape[:2]
        out = {
            # One copy into a contiguous CHW tensor; flips/crops above were views.
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": record.get("height", original_size[0]),
            "width": record.get("width", original_size[1]),
            "image_id": record.get("image_id"),
            "file_name": record["file_name"],
        }
        if self.is_train:
            out["instances"] = annotations_to_instances(
                record.get("annotations", []), transforms, original_size=original_size, image_size=image_size,
                mask_format=self.mask_format, use_keypoints=self.use_keypoint, recompute_boxes=self.recompute_boxes,
            )
        return out
