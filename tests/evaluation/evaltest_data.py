"""Synthetic COCO ground truth and hand-made predictions for the evaluation tests.

Plain functions (not fixtures) so spawned worker processes can rebuild the same data.
Category ids are non-contiguous (3, 7, 12) to exercise the id mapping; some annotations are
crowd RLEs; every non-crowd object has 4 keypoints. Predictions are built from records (as
`detrun.data` loads them: contiguous classes, keypoints in continuous coordinates).
"""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import torch
from torch import nn

from detrun.checkpoint import load_weights
from detrun.data import DatasetCatalog
from detrun.structures import Boxes, Instances
from detrun.structures.masks import decode_rle

CATEGORY_IDS = [3, 7, 12]
CLASS_NAMES = ["circle", "square", "person"]
NUM_KEYPOINTS = 4
KPT_SIGMAS = [0.05, 0.06, 0.07, 0.08]
HEIGHT, WIDTH = 160, 200


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    """A convex-ish polygon inside the box (x, y, w, h)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
    px = x + w / 2 + np.cos(angles) * w / 2
    py = y + h / 2 + np.sin(angles) * h / 2
    return np.stack([px, py], axis=1).ravel().round(2).tolist()


def make_coco(num_images: int = 10, seed: int = 0) -> dict:
    """A COCO ground-truth dict with objects of all three area ranges and crowd regions."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id * 10, "height": HEIGHT, "width": WIDTH, "file_name": f"img{image_id}.png"})
        for k in range(int(rng.integers(1, 5))):
            side = float(rng.choice([14.0, 50.0, 150.0]))  # small (<32²), medium, large (>96²) areas
            w, h = side * rng.uniform(0.8, 1.2), min(side * rng.uniform(0.8, 1.0), HEIGHT - 1.0)
            w = min(w, WIDTH - 1.0)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            polygon = _polygon(rng, x, y, w, h)
            rle = mask_util.merge(mask_util.frPyObjects([polygon], HEIGHT, WIDTH))
            x0, y0, bw, bh = mask_util.toBbox(rle).tolist()
            ann = {"id": len(annotations) + 1, "image_id": image_id * 10,
                   "category_id": CATEGORY_IDS[int(rng.integers(0, 3))],
                   "bbox": [x0, y0, bw, bh], "area": float(mask_util.area(rle)), "iscrowd": 0,
                   "segmentation": [polygon]}
            if k == 0 and image_id % 3 == 0:  # a crowd region, as COCO stores them: RLE, no keypoints
                rle["counts"] = rle["counts"].decode()
                ann.update(iscrowd=1, segmentation=rle, keypoints=[0.0] * 3 * NUM_KEYPOINTS, num_keypoints=0)
            else:
                kx, ky = rng.uniform(x0, x0 + bw, NUM_KEYPOINTS), rng.uniform(y0, y0 + bh, NUM_KEYPOINTS)
                visible = rng.choice([0, 1, 2], NUM_KEYPOINTS, p=[0.2, 0.3, 0.5])
                visible[0] = 2
                kx, ky = np.where(visible > 0, kx, 0), np.where(visible > 0, ky, 0)
                ann["keypoints"] = np.stack([kx, ky, visible], axis=1).ravel().round(2).tolist()
                ann["num_keypoints"] = int((visible > 0).sum())
            annotations.append(ann)
    categories = [{"id": i, "name": n, "keypoints": [f"k{j}" for j in range(NUM_KEYPOINTS)],
                   "skeleton": [[1, 2], [2, 3], [3, 4]]} for i, n in zip(CATEGORY_IDS, CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _instances(size: tuple[int, int], boxes: list, scores: list, classes: list, masks: list,
               keypoints: list) -> Instances:
    num_keypoints = len(keypoints[0]) // 3 if keypoints else NUM_KEYPOINTS
    return Instances(
        size,
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        scores=torch.tensor(scores, dtype=torch.float32),
        pred_classes=torch.tensor(classes, dtype=torch.int64),
        pred_masks=torch.from_numpy(np.array(masks, dtype=bool).reshape(-1, *size)),
        pred_keypoints=torch.tensor(keypoints, dtype=torch.float32).reshape(-1, num_keypoints, 3),
    )


def _mask(segmentation, height: int, width: int) -> np.ndarray:
    rle = segmentation if isinstance(segmentation, dict) else mask_util.merge(
        mask_util.frPyObjects(segmentation, height, width))
    return decode_rle(rle).astype(bool)


def perfect_outputs(records: list[dict]) -> dict:
    """image_id -> model output reproducing every non-crowd ground-truth object exactly."""
    outputs = {}
    for r in records:
        anns = [a for a in r["annotations"] if not a["iscrowd"]]
        size = (r["height"], r["width"])
        outputs[r["image_id"]] = {"instances": _instances(
            size,
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
            [1.0 - 0.01 * i for i in range(len(anns))],
            [a["category_id"] for a in anns],
            [_mask(a["segmentation"], *size) for a in anns],
            [a["keypoints"] for a in anns],
        )}
    return outputs


def noisy_outputs(records: list[dict], seed: int = 1) -> dict:
    """image_id -> output with jittered, missed, misclassified and spurious detections,
    including detections on crowd regions."""
    rng = np.random.default_rng(seed)
    outputs = {}
    for r in records:
        boxes, scores, classes, masks, keypoints = [], [], [], [], []
        objects = [(a["bbox"], a["category_id"], np.reshape(a["keypoints"], (-1, 3))[:, :2])
                   for a in r["annotations"] if rng.random() < 0.85]
        for _ in range(int(rng.integers(0, 3))):
            x, y, w, h = rng.uniform(0, 90), rng.uniform(0, 60), rng.uniform(8, 60), rng.uniform(8, 40)
            points = np.stack([rng.uniform(x, x + w, NUM_KEYPOINTS), rng.uniform(y, y + h, NUM_KEYPOINTS)], 1)
            objects.append(([x, y, w, h], int(rng.integers(0, 3)), points))
        for (x, y, w, h), c, points in objects:
            x, y = x + rng.normal(0, 0.08 * w), y + rng.normal(0, 0.08 * h)
            w, h = w * rng.uniform(0.85, 1.15), h * rng.uniform(0.85, 1.15)
            boxes.append([x, y, x + w, y + h])
            scores.append(float(rng.uniform(0.05, 1.0)))
            classes.append(c if rng.random() < 0.9 else int(rng.integers(0, 3)))
            mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
            mask[max(int(y), 0):max(int(y + h), 0), max(int(x), 0):max(int(x + w), 0)] = True
            masks.append(mask)
            points = points + rng.normal(0, 2.0, points.shape)
            keypoints.append(np.concatenate([points, rng.uniform(0.1, 1.0, (NUM_KEYPOINTS, 1))], 1).ravel().tolist())
        outputs[r["image_id"]] = {"instances": _instances((HEIGHT, WIDTH), boxes, scores, classes, masks, keypoints)}
    return outputs


class OracleModel(nn.Module):
    """A "model" answering with the ground truth of `dataset_name` (read on first use, by image_id)."""

    def __init__(self, *, dataset_name: str, weights: str | None = None):
        super().__init__()
        self.dataset_name = dataset_name
        self.scale = nn.Parameter(torch.ones(()))
        self._outputs = None

    def forward(self, inputs: list[dict]) -> list[dict]:
        if self._outputs is None:
            self._outputs = perfect_outputs(DatasetCatalog.get(self.dataset_name))
        return [self._outputs[x["image_id"]] for x in inputs]


class CenterBoxModel(nn.Module):
    """One detection per image: the centre half as box and mask, class 1, score 0.9. Its unused
    class predictor (``roi_heads.box_predictor.cls_score``) lets tests load weights that don't fit."""

    def __init__(self, *, num_classes: int = 3, weights: str | None = None):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.roi_heads = nn.ModuleDict({"box_predictor": nn.ModuleDict({"cls_score": nn.Linear(2, num_classes + 1)})})
        if weights:
            load_weights(self, weights)

    def forward(self, inputs: list[dict]) -> list[dict]:
        outputs = []
        for x in inputs:
            h, w = x["height"], x["width"]
            mask = torch.zeros(1, h, w, dtype=torch.bool)
            mask[0, h // 4:3 * h // 4, w // 4:3 * w // 4] = True
            outputs.append({"instances": Instances(
                (h, w), pred_boxes=Boxes(torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]])),
                scores=torch.tensor([0.9]), pred_classes=torch.tensor([1]), pred_masks=mask)})
        return outputs
