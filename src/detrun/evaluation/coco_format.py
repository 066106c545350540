"""Data set records (list[dict], Detectron2 format) to a COCO ground-truth dict.

Data sets registered from a COCO JSON are evaluated against that file; any other data set is
converted here, once, and the result cached as JSON next to the evaluation outputs.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util

from detrun.errors import UserError
from detrun.structures import BoxMode

from .coco_results import KEYPOINT_OFFSET
from .json_files import to_json

logger = logging.getLogger(__name__)


def _coco_image_ids(records: Sequence[dict]) -> dict[Any, int] | None:
    """None when every record's image_id is already an int (kept as is); else id -> 1..N.

    pycocotools and faster-coco-eval index images by int; string ids (file names, say) are renumbered.
    """
    ids = [r["image_id"] for r in records]
    if all(isinstance(i, (int, np.integer)) for i in ids):
        return None
    return {image_id: k + 1 for k, image_id in enumerate(ids)}


def _segmentation(segm: Any, height: int, width: int, where: str) -> tuple[Any, float]:
    """(JSON-able segmentation, mask area in pixels) of polygons or an RLE (compressed or not)."""
    if isinstance(segm, dict):
        rle = mask_util.frPyObjects(segm, height, width) if isinstance(segm["counts"], list) else dict(segm)
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
        return rle, float(mask_util.area(rle))
    if not isinstance(segm, (list, tuple)):
        raise UserError(f"{where}: segmentation must be a list of polygons or an RLE dict, got {type(segm).__name__}")
    polygons = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in segm]
    polygons = [p for p in polygons if len(p) >= 6]  # fewer than 3 points has no area
    if not polygons:
        return [], 0.0
    area = float(mask_util.area(mask_util.merge(mask_util.frPyObjects(polygons, height, width))))
    return polygons, area


def records_to_coco(
    records: Sequence[dict], *, class_names: Sequence[str], category_ids: Sequence[int] | None = None,
    dataset_name: str = "dataset",
) -> dict:
    """Build a COCO ground-truth dict (``images``, ``annotations``, ``categories``) from records.

    Args:
        records: dicts with ``image_id``, ``height``, ``width``, ``file_name`` and ``annotations``
            (``bbox`` + ``bbox_mode``, contiguous ``category_id``, optional ``segmentation``
            polygons or RLE, ``keypoints`` flat [x, y, v] * K in continuous coordinates, ``iscrowd``).
        class_names: the C class names; category k is named ``class_names[k]``.
        category_ids: COCO id of each contiguous class (the data set's own ids); identity when None.
        dataset_name: used in error messages.

    Returns:
        A COCO dict. Areas are mask areas when a segmentation exists, else box areas. When any
        annotation has keypoints, every annotation gets ``num_keypoints`` (pycocotools needs it).
        Non-int image ids are renumbered 1..N; ``info["image_id_map"]`` then lists
        ``[original id, COCO id]`` pairs.
    """
    category_ids = list(range(len(class_names))) if category_ids is None else list(category_ids)
    id_map = _coco_image_ids(records)
    has_keypoints = any("keypoints" in a for r in records for a in r.get("annotations", ()))
    images, annotations = [], []
    for record in records:
        image_id = record["image_id"] if id_map is None else id_map[record["image_id"]]
        height, width = int(record["height"]), int(record["width"])
        images.append({"id": int(image_id), "height": height, "width": width, "file_name": str(record.get("file_name", ""))})
        for ann in record.get("annotations", ()):
            where = f"data set {dataset_name!r}, image {record['image_id']!r}"
            if "bbox_mode" not in ann:
                raise UserError(f"{where}: annotation without 'bbox_mode'; set it to a detrun.structures.BoxMode value")
            bbox = BoxMode.convert(list(map(float, ann["bbox"])), BoxMode(ann["bbox_mode"]), BoxMode.XYWH_ABS)
            coco_ann = {
                "id": len(annotations) + 1,  # pycocotools treats id 0 as "unmatched"
                "image_id": int(image_id),
                "category_id": int(category_ids[ann["category_id"]]),
                "bbox": bbox,
                "iscrowd": int(ann.get("iscrowd", 0)),
                "area": bbox[2] * bbox[3],
            }
            if "segmentation" in ann:
                coco_ann["segmentation"], coco_ann["area"] = _segmentation(ann["segmentation"], height, width, where)
            if has_keypoints:
                # records hold continuous coordinates; COCO, pixel indices (see coco_results)
                keypoints = [float(v) - (KEYPOINT_OFFSET if i % 3 != 2 else 0.0)
                             for i, v in enumerate(ann.get("keypoints", ()))]
                coco_ann["keypoints"] = keypoints
                coco_ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if v > 0)
            annotations.append(coco_ann)
    info = {"description": f"detrun conversion of data set {dataset_name!r}"}
    if id_map is not None:
        info["image_id_map"] = [[k, v] for k, v in id_map.items()]
    categories = [{"id": int(i), "name": str(n)} for i, n in zip(category_ids, class_names)]
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def records_fingerprint(records: Sequence[dict]) -> str:
    """A hash of the records, so a cached conversion is reused only for the same data."""
    text = json.dumps(records, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def cached_records_to_coco(
    records: Sequence[dict], *, cache_file: Path | None, class_names: Sequence[str],
    category_ids: Sequence[int] | None, dataset_name: str,
) -> dict:
    """`records_to_coco`, reusing `cache_file` when it was written for identical records.

    The cache is rewritten when missing or stale; `cache_file` None converts in memory only.
    """
    fingerprint = records_fingerprint(records)
    if cache_file is not None and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except json.JSONDecodeError:
            cached = {}  # a half-written cache from a killed run: convert again
        if cached.get("info", {}).get("detrun_fingerprint") == fingerprint:
            logger.info("Using cached COCO conversion of %r: %s", dataset_name, cache_file)
            return cached
    dataset = records_to_coco(records, class_names=class_names, category_ids=category_ids, dataset_name=dataset_name)
    dataset["info"]["detrun_fingerprint"] = fingerprint
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(to_json(dataset))
        tmp.replace(cache_file)  # atomic: a reader never sees half a file
        logger.info("Converted data set %r to COCO format: %s", dataset_name, cache_file)
    return dataset
