"""From a record's annotations to `Instances`, through the transforms applied to its image.

Detectron2's ``detection_utils`` API: `transform_instance_annotations` maps one annotation
dict, `annotations_to_instances` packs a list of them, `filter_empty_instances` drops objects
that vanished; `read_image` and `check_image_size` (from `image_io`) are here too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch

from detrun.structures import BitMasks, Boxes, BoxMode, Instances, Keypoints, PolygonMasks, decode_rle, polygons_to_bitmask

from .image_io import check_image_size, read_image
from .problems import DataError
from .transforms import HFlipTransform, Transform, TransformList

__all__ = ["annotations_to_instances", "check_image_size", "filter_empty_instances", "read_image",
           "transform_instance_annotations"]


def transform_instance_annotations(annotation: dict, transforms: Transform, image_size: tuple[int, int], *,
                                   keypoint_hflip_indices: Sequence[int] | None = None) -> dict:
    """Map one annotation dict through `transforms` into an image of `image_size` (h, w) pixels.

    Returns a new dict (Detectron2 edits the given one in place; records here are reused every
    epoch): "bbox" the box around the 4 transformed corners, clipped to the image, with
    "bbox_mode" XYXY_ABS (the input's mode defaults to COCO's XYWH_ABS); "segmentation" as
    polygons (flat float64 arrays; parts cut away vanish) or, for RLE and bitmaps, a bool
    [h, w] array; "keypoints" float64 [K, 3], where points outside the image become (0, 0, 0)
    (COCO: unlabelled), as do points that were unlabelled.

    Keypoint names swap left/right when the image is mirrored an odd number of times. Flips
    that carry their own ``keypoint_flip_indices`` (``RandomFlip(keypoint_flip_indices=...)``)
    do it themselves; `keypoint_hflip_indices` (index k holds the keypoint that k becomes) serves
    the others. Unlike Detectron2, vertical flips count as mirrors too (a vertical flip is a
    horizontal one plus a 180° rotation), and a mirror with no indices at all is an error, not a
    silent left/right mix-up.
    """
    out = dict(annotation)
    h, w = image_size
    bbox = BoxMode.convert(np.asarray(annotation["bbox"], dtype=np.float64)[None],
                           annotation.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)
    out["bbox"] = np.clip(transforms.apply_box(bbox)[0], 0, [w, h, w, h])
    out["bbox_mode"] = BoxMode.XYXY_ABS

    segm = annotation.get("segmentation")
    if isinstance(segm, list):
        out["segmentation"] = transforms.apply_polygons([np.asarray(p, dtype=np.float64) for p in segm])
    elif isinstance(segm, (dict, np.ndarray)):
        bitmask = _rle_to_bitmask(segm) if isinstance(segm, dict) else segm.astype(bool)
        out["segmentation"] = transforms.apply_masks(bitmask[None])[0]
    elif segm is not None:
        raise DataError(f"annotation id {annotation.get('id')}: segmentation must be polygons (a list), RLE (a dict) "
                        f"or a bitmap, got {type(segm).__name__}")

    if annotation.get("keypoints") is not None:
        out["keypoints"] = _transform_keypoints(annotation, transforms, image_size, keypoint_hflip_indices)
    return out


def _transform_keypoints(annotation: dict, transforms: Transform, image_size: tuple[int, int],
                         hflip_indices: Sequence[int] | None) -> np.ndarray:
    kps = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
    kps = transforms.apply_keypoints(kps[None])[0]
    steps = transforms.transforms if isinstance(transforms, TransformList) else [transforms]
    # VFlipTransform is an HFlipTransform: both mirror, so both swap left and right
    bare_mirrors = sum(isinstance(t, HFlipTransform) and t.keypoint_flip_indices is None for t in steps)
    if bare_mirrors % 2:
        if hflip_indices is None:
            raise ValueError(
                f"annotation id {annotation.get('id')}: the image was mirrored but no keypoint flip indices were given, "
                "so left/right keypoints would swap sides unnoticed; use RandomFlip(keypoint_flip_indices="
                "keypoint_flip_indices(names, flip_map)) (identity indices if no keypoint has a mirror twin)")
        if len(hflip_indices) != len(kps):
            raise ValueError(f"keypoint_hflip_indices has {len(hflip_indices)} entries for {len(kps)} keypoints")
        kps = kps[list(hflip_indices)]
    h, w = image_size
    inside = (kps[:, 0] >= 0) & (kps[:, 1] >= 0) & (kps[:, 0] <= w) & (kps[:, 1] <= h)
    kps[~inside | (kps[:, 2] == 0)] = 0
    return kps


def annotations_to_instances(annos: list[dict], image_size: tuple[int, int], mask_format: str | None = "polygon", *,
                             use_keypoints: bool | None = None) -> Instances:
    """Pack annotation dicts (already transformed, e.g. by `transform_instance_annotations`) into
    Instances of `image_size` (h, w). Crowd annotations are not dropped here (the mapper does).

    Fields: gt_boxes (float32 XYXY, as given — not clipped), gt_classes int64, gt_masks,
    gt_keypoints float32 [N, K, 3].
    `mask_format`: "polygon" → PolygonMasks; "bitmask" → BitMasks [N, h, w]; None → no gt_masks.
    Every annotation must then have a segmentation (Detectron2 silently skips masks when the
    first one has none); an image without objects still gets an empty gt_masks (models read it
    on every image). RLE or bitmap segmentations make BitMasks even for "polygon" (Detectron2
    raises).
    `use_keypoints`: None → gt_keypoints when the annotations have keypoints (Detectron2);
    True → required, and an image without objects gets [0, 0, 3]; False → never.
    """
    h, w = image_size
    inst = Instances(image_size)
    boxes = [BoxMode.convert(np.asarray(a["bbox"], dtype=np.float64)[None], a.get("bbox_mode", BoxMode.XYWH_ABS),
                             BoxMode.XYXY_ABS) for a in annos]
    inst.gt_boxes = Boxes(torch.from_numpy(np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)))
    inst.gt_classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)

    if mask_format is not None:
        if mask_format not in ("polygon", "bitmask"):
            raise ValueError(f"mask_format must be 'polygon', 'bitmask' or None, got '{mask_format}'")
        missing = [a.get("id") for a in annos if a.get("segmentation") is None]
        if missing:
            raise DataError(f"annotation id {missing[0]} has no segmentation, but instance masks were asked for "
                            "(mask_format); pass mask_format=None (DatasetMapper: use_instance_mask=False) to train boxes only")
        segms = [a["segmentation"] for a in annos]
        if mask_format == "bitmask" or any(not isinstance(s, list) for s in segms):
            bitmaps = [_to_bitmask(s, a, h, w) for s, a in zip(segms, annos)]
            inst.gt_masks = BitMasks(torch.from_numpy(np.stack(bitmaps)) if bitmaps else torch.zeros(0, h, w, dtype=torch.bool))
        else:
            inst.gt_masks = PolygonMasks(segms)

    has_keypoints = [a.get("keypoints") is not None for a in annos]
    if use_keypoints or (use_keypoints is None and any(has_keypoints)):
        if not all(has_keypoints):
            raise DataError(f"annotation id {annos[has_keypoints.index(False)].get('id')} has no keypoints, but keypoints "
                            "were asked for (or other annotations of the image have them); use a keypoint data set or "
                            "DatasetMapper(use_keypoint=False)")
        kps = [np.asarray(a["keypoints"], dtype=np.float32).reshape(-1, 3) for a in annos]
        inst.gt_keypoints = Keypoints(np.stack(kps) if kps else np.zeros((0, 0, 3), np.float32))
    return inst


def filter_empty_instances(instances: Instances, by_box: bool = True, by_mask: bool = True,
                           box_threshold: float = 1e-5) -> Instances:
    """Drop objects whose gt_boxes side is <= `box_threshold` pixels (`by_box`) or whose gt_masks
    is empty (`by_mask`) — e.g. objects cropped away."""
    keep = torch.ones(len(instances), dtype=torch.bool)
    if by_box:
        keep &= instances.gt_boxes.nonempty(threshold=box_threshold)
    if by_mask and instances.has("gt_masks"):
        keep &= instances.gt_masks.nonempty()
    return instances if bool(keep.all()) else instances[keep]


def _rle_to_bitmask(rle: dict) -> np.ndarray:
    """bool [h, w] from an RLE dict (compressed, or uncompressed with a list of counts)."""
    if isinstance(rle["counts"], list):
        rle = mask_util.frPyObjects(rle, *rle["size"])
    return decode_rle(rle).astype(bool)


def _to_bitmask(segm, annotation: dict, h: int, w: int) -> np.ndarray:
    """bool [h, w] from polygons, RLE or a bitmap, which must already have the image's size."""
    if isinstance(segm, list):
        return polygons_to_bitmask(segm, h, w)
    bitmask = _rle_to_bitmask(segm) if isinstance(segm, dict) else np.asarray(segm, dtype=bool)
    if bitmask.shape != (h, w):
        raise DataError(f"annotation id {annotation.get('id')}: its mask is {bitmask.shape[1]}x{bitmask.shape[0]} "
                        f"pixels but the image is {w}x{h}")
    return bitmask
