"""Do faster-coco-eval and pycocotools agree? A fixed synthetic check, run once per process.

Ground truth with polygons, crowd RLEs and keypoints, and predictions that are jittered copies
plus false positives: every code path COCO AP has (matching, crowd ignore, area ranges, OKS).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .coco_backends import load_coco, run_cocoeval
from .coco_format import records_to_coco
from .coco_metrics import summarize
from .coco_results import encode_masks, results_for_task

_SIZE = (96, 128)  # (height, width) of every synthetic image
_NUM_KEYPOINTS = 4
_SIGMAS = [0.05, 0.06, 0.07, 0.08]


def _synthetic_records(rng: np.random.Generator, num_images: int) -> list[dict]:
    height, width = _SIZE
    records = []
    for image_id in range(1, num_images + 1):
        annotations = []
        for _ in range(rng.integers(1, 6)):
            w, h = rng.uniform(4, 80), rng.uniform(4, 60)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            polygon = [x, y, x + w, y, x + 0.7 * w, y + h, x, y + 0.8 * h]
            keypoints = np.stack([rng.uniform(x, x + w, _NUM_KEYPOINTS), rng.uniform(y, y + h, _NUM_KEYPOINTS),
                                  rng.integers(0, 3, _NUM_KEYPOINTS)], axis=1)
            annotations.append({
                "bbox": [x, y, w, h], "bbox_mode": 1, "category_id": int(rng.integers(0, 3)),
                "segmentation": [polygon], "keypoints": keypoints.ravel().tolist(),
                "iscrowd": int(rng.random() < 0.15),
            })
        records.append({"image_id": image_id, "height": height, "width": width, "annotations": annotations})
    return records


def _synthetic_results(rng: np.random.Generator, coco: dict) -> list[dict]:
    height, width = _SIZE
    boxes = [(a["image_id"], a["category_id"], a["bbox"]) for a in coco["annotations"] if rng.random() < 0.8]
    for _ in range(len(coco["annotations"]) // 2):  # false positives
        boxes.append((int(rng.integers(1, len(coco["images"]) + 1)), int(rng.integers(0, 3)),
                      [rng.uniform(0, 90), rng.uniform(0, 60), rng.uniform(4, 40), rng.uniform(4, 40)]))
    results = []
    for image_id, category_id, (x, y, w, h) in boxes:
        x, y = x + rng.normal(0, 2), y + rng.normal(0, 2)
        mask = torch.zeros(1, height, width, dtype=torch.bool)
        mask[0, max(int(y), 0):int(y + h), max(int(x), 0):int(x + w)] = True
        keypoints = np.stack([rng.uniform(x, x + w, _NUM_KEYPOINTS), rng.uniform(y, y + h, _NUM_KEYPOINTS),
                              np.ones(_NUM_KEYPOINTS)], axis=1)
        results.append({"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h],
                        "score": float(rng.random()), "segmentation": encode_masks(mask)[0],
                        "keypoints": keypoints.ravel().tolist()})
    return results


def backend_parity_gap(num_images: int = 24, seed: int = 0) -> float:
    """Largest |faster-coco-eval - pycocotools| over every metric of bbox, segm and keypoints, in AP points.

    Needs faster-coco-eval installed. A metric that is NaN in both counts as equal; NaN in one
    only is an infinite gap.
    """
    rng = np.random.default_rng(seed)
    records = _synthetic_records(rng, num_images)
    coco = records_to_coco(records, class_names=["a", "b", "c"], dataset_name="parity check")
    results = _synthetic_results(rng, coco)
    gap = 0.0
    for task in ("bbox", "segm", "keypoints"):
        metrics = []
        for backend in ("pycocotools", "faster_coco_eval"):
            # each backend gets its own ground truth: pycocotools rewrites polygons to RLE in place
            coco_gt = load_coco(records_to_coco(records, class_names=["a", "b", "c"]), backend)
            coco_eval = run_cocoeval(coco_gt, results_for_task(results, task), task, backend=backend,
                                     kpt_oks_sigmas=_SIGMAS)
            metrics.append(summarize(coco_eval, ["a", "b", "c"]))
        for name, reference in metrics[0].items():
            value = metrics[1][name]
            if math.isnan(reference) != math.isnan(value):
                return math.inf
            if not math.isnan(reference):
                gap = max(gap, abs(reference - value))
    return gap
