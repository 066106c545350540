"""Scoring a saved predictions file (``task=eval predictions=PATH``) without running a model.

Two formats are read:

- a COCO results JSON (a list of ``{"image_id", "category_id", "bbox" XYWH, "score"}`` with
  optional ``"segmentation"`` RLE and ``"keypoints"``), e.g. a run's
  ``inference/coco_instances_results.json``; category ids are the data set's;
- detrun's ``predictions.json`` from ``task=predict``: the same keys but ``file_name`` instead of
  ``image_id`` and contiguous class indices as ``category_id``.

Each image of the evaluated data set becomes an `Instances` (no detections: an empty one) fed to
the recipe's evaluators as the model's output would be, so every instance evaluator (COCO,
and any with the same ``process`` contract) scores it exactly as after inference.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.errors import UserError
from detrun.structures import Boxes, Instances
from detrun.structures.masks import decode_rle

from .coco_results import KEYPOINT_OFFSET


def read_predictions(path: str | Path) -> list[dict]:
    """The detections in a saved predictions file (a JSON list of dicts), checked for the keys
    every detection needs; a missing or malformed file is a `UserError` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"predictions={path}: no such file (give a COCO results JSON, e.g. a run's "
                        "inference/coco_instances_results.json, or task=predict's predictions.json)")
    try:
        detections = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"predictions={path} is not valid JSON ({error})") from None
    if not isinstance(detections, list):
        raise UserError(f"predictions={path} must hold a JSON list of detections, not a {type(detections).__name__}")
    for k, det in enumerate(detections):
        if not isinstance(det, dict):
            raise UserError(f"predictions={path}: detection {k} is a {type(det).__name__}, not a dict")
        missing = sorted({"category_id", "bbox", "score"} - set(det))
        if "image_id" not in det and "file_name" not in det:
            missing.append("image_id (or file_name)")
        if missing:
            raise UserError(f"predictions={path}: detection {k} lacks {', '.join(missing)}")
    return detections


def _group_by_image(detections: list[dict], records: list[dict], dataset_name: str, path: Any) -> dict:
    """Detections per record image id. COCO results name images by id; detrun's predictions.json
    by file name (matched on the full path, else the base name)."""
    groups: dict[Any, list[dict]] = defaultdict(list)
    by_id = {str(r["image_id"]): r["image_id"] for r in records}
    by_path = {str(Path(r["file_name"]).resolve()): r["image_id"] for r in records}
    by_name = {Path(r["file_name"]).name: r["image_id"] for r in records}
    for det in detections:
        if "image_id" in det:
            image_id = by_id.get(str(det["image_id"]))
        else:
            file_name = str(det["file_name"])
            image_id = by_path.get(str(Path(file_name).resolve()), by_name.get(Path(file_name).name))
        if image_id is None:
            which = det.get("image_id", det.get("file_name"))
            raise UserError(f"predictions={path}: image {which!r} is not in data set {dataset_name!r}; "
                            "score the file against the data set it was predicted on (evaluator.dataset_name=NAME)")
        groups[image_id].append(det)
    return groups


def _contiguous_classes(detections: list[dict], dataset_name: str) -> dict[int, int] | None:
    """Data set category id → contiguous index for COCO results; None for detrun's predictions.json
    (already contiguous)."""
    if not detections or "image_id" not in detections[0]:
        return None
    id_map = MetadataCatalog.get(dataset_name).get("thing_dataset_id_to_contiguous_id")
    return None if id_map is None else {int(k): int(v) for k, v in id_map.items()}


def detections_to_instances(detections: list[dict], height: int, width: int, *, masks: bool, keypoints: bool,
                            class_map: dict[int, int] | None = None) -> Instances:
    """One image's saved detections as the model would have output them.

    Args:
        detections: dicts with ``bbox`` XYWH pixels, ``score``, ``category_id`` and, when
            `masks` / `keypoints`, ``segmentation`` (RLE) / ``keypoints`` (flat 3K, COCO pixel indices).
        height, width: the image size in pixels.
        masks, keypoints: whether the run predicted them (the fields are set even with no
            detections, as a model sets them, so evaluators score the same tasks).
        class_map: data set category id → contiguous index; identity when None.

    Returns:
        `Instances` of size (height, width) with ``pred_boxes`` (XYXY, float64), ``scores``,
        ``pred_classes`` and optionally ``pred_masks`` bool[N, H, W], ``pred_keypoints`` float[N, K, 3].
    """
    boxes = torch.tensor([d["bbox"] for d in detections], dtype=torch.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    classes = [int(d["category_id"]) for d in detections]
    if class_map is not None:
        classes = [class_map[c] for c in classes]
    instances = Instances((height, width), pred_boxes=Boxes(boxes),
                          scores=torch.tensor([float(d["score"]) for d in detections], dtype=torch.float64),
                          pred_classes=torch.tensor(classes, dtype=torch.int64))
    if masks:
        decoded = [decode_rle(d["segmentation"]) for d in detections]
        instances.pred_masks = torch.from_numpy(np.stack(decoded).astype(bool) if decoded
                                                else np.zeros((0, height, width), dtype=bool))
    if keypoints:
        points = torch.tensor([d["keypoints"] for d in detections], dtype=torch.float64)
        points = points.reshape(len(detections), -1, 3)
        points[:, :, :2] += KEYPOINT_OFFSET
        instances.pred_keypoints = points
    return instances


def score_predictions(path: str | Path, evaluators: list[Any], dataset_name: str) -> None:
    """Feed the saved detections of every image of `dataset_name` to `evaluators` (their
    ``process``), image by image so masks are decoded one image at a time."""
    if dataset_name not in DatasetCatalog:
        raise UserError(f"evaluator.dataset_name={dataset_name!r} is not a registered data set")
    detections = read_predictions(path)
    records = DatasetCatalog.get(dataset_name)
    groups = _group_by_image(detections, records, dataset_name, path)
    class_map = _contiguous_classes(detections, dataset_name)
    masks = any("segmentation" in d for d in detections)
    keypoints = any("keypoints" in d for d in detections)
    try:
        for record in records:
            image_id = record["image_id"]
            instances = detections_to_instances(groups.get(image_id, []), record["height"], record["width"],
                                                masks=masks, keypoints=keypoints, class_map=class_map)
            inputs = [{"image_id": image_id, "file_name": record["file_name"],
                       "height": record["height"], "width": record["width"]}]
            for evaluator in evaluators:
                evaluator.process(inputs, [{"instances": instances}])
    except KeyError as error:
        raise UserError(f"predictions={path}: a detection lacks or has an unknown {error} "
                        f"for data set {dataset_name!r}") from None
