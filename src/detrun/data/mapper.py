"""`DatasetMapper`: one record → one model input (image tensor + Instances)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from detrun.structures import Instances

from .detection_utils import annotations_to_instances, filter_empty_instances, transform_instance_annotations
from .image_io import check_image_size, read_image, read_label_map
from .problems import DataError
from .transforms import Augmentation, AugInput, Transform, TransformList


class DatasetMapper:
    """Read, augment and pack one record.

    Returns ``{"image": uint8 Tensor[C, H, W] (after augmentation), "instances": Instances (training
    only), "sem_seg": int64 Tensor[H, W] (see `use_sem_seg`), "height", "width" (original size),
    "image_id", "file_name"}``. A record with ``"image"`` (uint8 [H, W, C] in `image_format`) is
    mapped from those pixels instead of its file.

    Args:
        is_train: keep annotations (crowd ones dropped) as ``instances``; at test time they are dropped.
        augmentations: applied in order, e.g. ``[ResizeShortestEdge(...), RandomFlip()]`` (fixed Transforms too).
        image_format: "RGB" (default), "BGR" or "L" — whatever the model's pixel mean/std assume.
        use_instance_mask: produce gt_masks; mask_format: "polygon" (cheap to transform) or "bitmask".
        use_keypoint: produce gt_keypoints.
        recompute_boxes: gt_boxes from the masks after augmenting (use with crops).
        use_sem_seg: read the record's ``sem_seg_file_name`` (a label PNG, see `read_label_map`)
            into ``"sem_seg"``, augmented with the image (nearest neighbour; pixels the
            transforms create, e.g. padding, are 255 = ignore). None: in training only
            (evaluators read the ground truth from the files themselves).

    Differs from Detectron2's DatasetMapper: `image_format` defaults to "RGB" (Detectron2's
    configs use "BGR" for its Caffe2-trained backbones), `use_instance_mask` to True; keypoint
    flip indices travel with the flip (``RandomFlip(keypoint_flip_indices=...)``) rather than
    a mapper argument; augmentations draw from the per-sample `rng`; ``sem_seg_file_name`` is
    read in training only by default, and palette label PNGs give their indices.
    """

    def __init__(self, *, is_train: bool, augmentations: Sequence[Augmentation | Transform] = (), image_format: str = "RGB",
                 use_instance_mask: bool = True, mask_format: str = "polygon", use_keypoint: bool = False,
                 recompute_boxes: bool = False, use_sem_seg: bool | None = None):
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
        self.use_sem_seg = is_train if use_sem_seg is None else use_sem_seg

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict:
        """Map `record`; `rng` drives the augmentations (a fresh unseeded one if None)."""
        rng = rng if rng is not None else np.random.default_rng()
        image = record.get("image")  # pixels already decoded (in `image_format`), e.g. by `Predictor`
        if image is None:
            image = read_image(record["file_name"], self.image_format, image_id=record.get("image_id"))
            check_image_size(record, image)
        original_size = image.shape[:2]
        sem_seg = None
        if self.use_sem_seg and record.get("sem_seg_file_name"):
            sem_seg = read_label_map(record["sem_seg_file_name"], image_id=record.get("image_id"))
            if sem_seg.shape != original_size:
                raise DataError(f"label map '{record['sem_seg_file_name']}' is {sem_seg.shape[1]}x{sem_seg.shape[0]} "
                                f"pixels but its image '{record['file_name']}' is {original_size[1]}x{original_size[0]}")
        # One AugInput for image and label map: augmentations that read the map (crops that
        # avoid one-class windows) see it, and both go through the same transforms.
        aug_input = AugInput(image, sem_seg=sem_seg)
        transforms = aug_input.apply_augmentations(self.augmentations, rng)
        image = aug_input.image
        image_size = image.shape[:2]
        out = {
            # One copy into a contiguous CHW tensor; flips/crops above were views.
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": record.get("height", original_size[0]),
            "width": record.get("width", original_size[1]),
            "image_id": record.get("image_id"),
            "file_name": record["file_name"],
        }
        if sem_seg is not None:
            out["sem_seg"] = torch.from_numpy(np.ascontiguousarray(aug_input.sem_seg, dtype=np.int64))
        if self.is_train:
            out["instances"] = self._instances(record.get("annotations", []), transforms, image_size)
        return out

    def _instances(self, annotations: list[dict], transforms: TransformList, image_size: tuple[int, int]) -> Instances:
        # Fields the model won't use are dropped first: transforming them costs time (RLE) or may
        # raise (keypoints mirrored without flip indices) for nothing.
        unused = ({"segmentation"} if self.mask_format is None else set()) | ({"keypoints"} if not self.use_keypoint else set())
        annos = [transform_instance_annotations({k: v for k, v in a.items() if k not in unused}, transforms, image_size)
                 for a in annotations if not a.get("iscrowd", 0)]
        inst = annotations_to_instances(annos, image_size, self.mask_format, use_keypoints=self.use_keypoint)
        if self.recompute_boxes:
            # after crops a clipped box can be larger than what is left of the object
            inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
            inst.gt_boxes.clip(image_size)
        return filter_empty_instances(inst)
