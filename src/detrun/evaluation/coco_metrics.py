"""COCO summary metrics read off ``COCOeval.eval["precision"]``, in percent (0-100).

The same numbers ``COCOeval.summarize()`` prints (its `stats`), computed without printing and
identically for every backend, plus per-category AP as Detectron2 reports it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# (metric name, IoU threshold or None = averaged over 0.50:0.95, area range label)
_DETECTION_METRICS = (
    ("AP", None, "all"), ("AP50", 0.5, "all"), ("AP75", 0.75, "all"),
    ("APs", None, "small"), ("APm", None, "medium"), ("APl", None, "large"),
)
# COCO keypoint evaluation has no "small" area range.
_KEYPOINT_METRICS = tuple(m for m in _DETECTION_METRICS if m[2] != "small")


def metric_names(iou_type: str) -> list[str]:
    """Summary metric names reported for `iou_type`, in table order."""
    return [name for name, _, _ in (_KEYPOINT_METRICS if iou_type == "keypoints" else _DETECTION_METRICS)]


def _mean_valid(precision: np.ndarray) -> float:
    """Mean over entries > -1 (pycocotools marks "no ground truth here" with -1), in percent; NaN if none."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) * 100 if valid.size else math.nan


def summarize(coco_eval: Any, class_names: Sequence[str]) -> dict[str, float]:
    """Summary and per-category AP from an accumulated COCOeval.

    Args:
        coco_eval: a COCOeval after ``evaluate()`` and ``accumulate()``.
        class_names: names for ``coco_eval.params.catIds``, in that order.

    Returns:
        ``{"AP", "AP50", "AP75", ["APs",] "APm", "APl", "AP-<class>" ...}`` in percent; NaN
        where no ground truth falls in the range (as pycocotools' -1).
    """
    params = coco_eval.params
    # precision: [IoU thresholds T, recall thresholds R, categories K, area ranges A, max dets M]
    precision = coco_eval.eval["precision"]
    metrics = _KEYPOINT_METRICS if params.iouType == "keypoints" else _DETECTION_METRICS
    last_max_dets = len(params.maxDets) - 1  # AP is reported at the largest detection budget
    results = {}
    for name, iou, area in metrics:
        p = precision[..., list(params.areaRngLbl).index(area), last_max_dets]
        if iou is not None:
            p = p[np.isclose(params.iouThrs, iou)]
        results[name] = _mean_valid(p)
    area_all = list(params.areaRngLbl).index("all")
    for k, name in enumerate(class_names):
        results[f"AP-{name}"] = _mean_valid(precision[:, :, k, area_all, last_max_dets])
    return results


def empty_metrics(iou_type: str, class_names: Sequence[str]) -> dict[str, float]:
    """Metrics for an evaluation without a single prediction: everything is 0."""
    return {**{name: 0.0 for name in metric_names(iou_type)}, **{f"AP-{n}": 0.0 for n in class_names}}
