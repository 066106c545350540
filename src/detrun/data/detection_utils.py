"""From a record's annotations to `Instances`, through a transform (`read_image` and
`check_image_size` from `image_io` are here too, where Detectron2 users look for them)."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import torch

from detrun.structures import BitMasks, Boxes, BoxMode, Instances, Keypoints, PolygonMasks, decode_rle, polygons_to_bitmask

from .image_io import check_image_size, read_image
from .problems import DataError
from .transforms import Transform

def annotations_to_instances(annotations: list[dict], transforms: Transform, *, original_size: tuple[int, int],
                             image_size: tuple[int, int], mask_format: str | None = "polygon",
                             use_keypoints: bool = False, recompute_boxes: bool = False) -> Instances:
    """Transform non-crowd record annotations and pack them into Instances of `image_size` (h, w).

    Fields: gt_boxes (clipped to the image), gt_classes int64, gt_masks (PolygonMasks, or BitMasks
    if ``mask_format == "bitmask"`` or any annotation is RLE; none if `mask_format` is None),
    gt_keypoints (if `use_keypoints`; points leaving the image get v = 0). Objects whose box or
    mask becomes empty (e.g. cropped away) are dropped. `recompute_boxes`: boxes from the masks
    (right after crops, where a clipped box can be larger than what is left of the object).
    """
    anns = [a for a in annotations if not a.get("iscrowd", 0)]
    h, w = image_size
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
    xywh = np.array([a.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS for a in anns], dtype=bool)
    boxes[xywh, 2:] += boxes[xywh, :2]
    boxes = transforms.apply_box(boxes) if len(anns) else boxes
    inst = Instances(image_size)
    gt_boxes = Boxes(torch.from_numpy(boxes.astype(np.float32)))
    gt_boxes.clip(image_size)
    inst.gt_boxes = gt_boxes
    inst.gt_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
    keep = gt_boxes.nonempty(threshold=1e-5)

    if mask_format is not None and not anns:  # keep the field: models read gt_masks of every image
        inst.gt_masks = PolygonMasks([]) if mask_format == "polygon" else BitMasks(torch.zeros(0, h, w, dtype=torch.bool))
    elif mask_format is not None:
        segms = [a.get("segmentation") for a in anns]
        if any(s is None for s in segms):
            raise DataError(f"annotation id {anns[segms.index(None)].get('id')} has no segmentation, but the "
                            "mapper uses instance masks (set use_instance_mask=False to train boxes only)")
        if mask_format == "bitmask" or any(isinstance(s, dict) for s in segms):
            oh, ow = original_size
            bitmaps = np.stack([_segmentation_to_bitmask(s, oh, ow) for s in segms])
            masks = BitMasks(torch.from_numpy(np.ascontiguousarray(transforms.apply_masks(bitmaps))))
        else:
            masks = PolygonMasks([transforms.apply_polygons([np.asarray(p, dtype=np.float64) for p in s]) for s in segms])
        inst.gt_masks = masks
        keep &= masks.nonempty()
        if recompute_boxes:
            inst.gt_boxes = masks.get_bounding_boxes()
            inst.gt_boxes.clip(image_size)
            keep &= inst.gt_boxes.nonempty(threshold=1e-5)

    if use_keypoints:
        missing = [a.get("id") for a in anns if not a.get("keypoints")]
        if missing:
            raise DataError(f"annotation id {missing[0]} has no keypoints, but the mapper uses keypoints "
                            "(use_keypoint=True); use a keypoint data set or set use_keypoint=False")
        # [N, K, 3]; an image without objects gets K = 0 (train loaders drop such images by default)
        if anns:
            kps = transforms.apply_keypoints(np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3))
        else:
            kps = np.zeros((0, 0, 3))
        outside = (kps[..., 0] < 0) | (kps[..., 1] < 0) | (kps[..., 0] > w) | (kps[..., 1] > h)
        kps[outside] = 0
        inst.gt_keypoints = Keypoints(torch.from_numpy(kps.astype(np.float32)))

    return inst if bool(keep.all()) else inst[keep]


def _segmentation_to_bitmask(segm, height: int, width: int) -> np.ndarray:
    if isinstance(segm, dict):  # RLE; uncompressed counts (a list) must be encoded first
        rle = mask_util.frPyObjects(segm, height, width) if isinstance(segm["counts"], list) else segm
        return decode_rle(rle).astype(bool)
    return polygons_to_bitmask(segm, height, width)
