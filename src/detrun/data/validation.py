"""Checks of records (the list[dict] every loader returns) for the bad inputs we refuse to train on.

Each check names the file and the annotation id. Used by every loader (`get_dataset`,
`load_coco_json`) and by ``python -m detrun task=check_data``.
"""
from __future__ import annotations

import math

from detrun.structures import BoxMode

from .problems import ProblemLog

# How far (pixels) a box may stick out of its image and still be taken (then clipped by the mapper):
# COCO boxes written as float x + w often exceed the border by rounding, never by more than ~0.5 px.
BOX_OUTSIDE_TOLERANCE = 1.0


def annotation_problem(ann: dict, *, height: int, width: int, num_classes: int | None,
                       num_keypoints: int | None) -> tuple[str, str] | None:
    """Return (kind, message) for the first thing wrong with one record annotation, or None if it is fine."""
    bbox = ann.get("bbox")
    if bbox is None or len(bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        return "bad box", f"bbox must be 4 finite numbers, got {bbox!r}"
    mode = ann.get("bbox_mode", BoxMode.XYWH_ABS)
    if mode not in (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS):
        return "bad box", f"unknown bbox_mode {mode!r}"
    # Plain arithmetic, not BoxMode.convert: this runs for each of COCO's ~900k annotations.
    x0, y0, x1, y1 = bbox
    if mode == BoxMode.XYWH_ABS:
        x1, y1 = x0 + x1, y0 + y1
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return "zero-size box", f"box {list(bbox)} has width {x1 - x0:g} and height {y1 - y0:g}; both must be > 0"
    t = BOX_OUTSIDE_TOLERANCE
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        return "box outside image", f"box (x0, y0, x1, y1) = ({x0:g}, {y0:g}, {x1:g}, {y1:g}) leaves the {width}x{height} image"
    cat = ann.get("category_id")
    if not isinstance(cat, int) or isinstance(cat, bool) or cat < 0 or (num_classes is not None and cat >= num_classes):
        return "unknown category id", f"category_id {cat!r} is not a contiguous id in 0..{(num_classes or 0) - 1}"
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        if not segm and not ann.get("iscrowd", 0):
            return "empty segmentation", "segmentation is an empty list of polygons"
        for poly in segm:
            if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2:
                n = len(poly) if isinstance(poly, (list, tuple)) else poly
                return "polygon with <3 points", f"a polygon must have >= 3 (x, y) points (>= 6 numbers, even), got {n}"
    elif isinstance(segm, dict):
        size = segm.get("size")
        if "counts" not in segm or size is None or list(size) != [height, width]:
            return "bad RLE", f"RLE segmentation must have 'counts' and size [{height}, {width}], got size {size}"
    elif segm is not None:
        return "bad segmentation", f"segmentation must be a list of polygons or an RLE dict, got {type(segm).__name__}"
    kps = ann.get("keypoints")
    if kps is not None:
        if len(kps) % 3 or (num_keypoints is not None and len(kps) != 3 * num_keypoints):
            want = f"3 × {num_keypoints}" if num_keypoints is not None else "a multiple of 3"
            return "bad keypoints", f"keypoints must have {want} numbers, got {len(kps)}"
    return None


def validate_records(records: list[dict], *, source: str, log: ProblemLog, num_classes: int | None = None,
                     num_keypoints: int | None = None) -> list[dict]:
    """Check every record and annotation; return the records with bad annotations (and records
    without a usable image entry) dropped. In "raise" mode the first problem raises DataError.

    `source` names where the records came from (annotation file or data set name) for messages.
    """
    kept = []
    for record in records:
        file_name = record.get("file_name", "?")
        image_id = record.get("image_id")
        height, width = record.get("height"), record.get("width")
        if not file_name or image_id is None or not _positive_int(height) or not _positive_int(width):
            log.add("bad image entry", source,
                    f"record for '{file_name}' needs file_name, image_id and positive integer height/width, "
                    f"got image_id={image_id!r}, height={height!r}, width={width!r}", image_id=image_id)
            continue
        good = []
        for ann in record.get("annotations", []):
            problem = annotation_problem(ann, height=height, width=width, num_classes=num_classes,
                                         num_keypoints=num_keypoints)
            if problem is None:
                good.append(ann)
            else:
                log.add(problem[0], source, f"{problem[1]}; image '{file_name}'", image_id=image_id,
                        annotation_id=ann.get("id"))
        if len(good) != len(record.get("annotations", [])):
            record = {**record, "annotations": good}
        kept.append(record)
    return kept


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0
