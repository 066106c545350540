"""Model outputs (`Instances`) to COCO result dicts, the format pycocotools' ``loadRes`` reads.

One dict per detection: ``{"image_id", "category_id", "score", "bbox": [x, y, w, h]}`` plus
``"segmentation"`` (compressed RLE, counts as str) when the instances have ``pred_masks`` and
``"keypoints"`` (flat ``[x, y, score] * K``) when they have ``pred_keypoints``. Coordinates are
those of the instances, i.e. the original image when the model resized its outputs to the
input's ``height``/``width`` as the model contract requires.

Keypoints: records and models use continuous coordinates (pixel i covers [i, i+1)), COCO
files integer pixel indices, so results get x, y - `KEYPOINT_OFFSET` (the COCO loader adds it).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from torch import Tensor

RESULT_KEYS = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}
KEYPOINT_OFFSET = 0.5


def _as_tensor(value: Any) -> Tensor:
    """Boxes/Keypoints/BitMasks keep their data in ``.tensor``; plain tensors pass through."""
    return value.tensor if hasattr(value, "tensor") else torch.as_tensor(value)


def encode_masks(masks: Tensor) -> list[dict]:
    """Encode bool/0-1 masks Tensor[N, H, W] as N compressed COCO RLEs with str counts.

    Float masks (probabilities) are thresholded at 0.5, as `paste_masks` does.
    """
    if masks.dtype != torch.bool:
        masks = masks >= 0.5
    if len(masks) == 0:
        return []
    # pycocotools wants Fortran-ordered uint8 [H, W, N]: a C-contiguous [N, W, H] array
    # viewed transposed is exactly that, so one copy suffices.
    fortran = masks.transpose(1, 2).contiguous().numpy().view(np.uint8).transpose(2, 1, 0)
    rles = mask_util.encode(fortran)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")  # bytes are not JSON
    return rles


def instances_to_coco_results(
    instances: Any, image_id: Any, *, category_ids: Mapping[int, int] | None = None
) -> list[dict]:
    """Convert one image's predictions to COCO result dicts.

    Args:
        instances: `Instances` with ``pred_boxes`` (Boxes or Tensor[N, 4] XYXY pixels),
            ``scores`` float[N], ``pred_classes`` int64[N] (contiguous 0..C-1) and optionally
            ``pred_masks`` bool[N, H, W] and ``pred_keypoints`` float[N, K, 3] (x, y, score),
            x and y in continuous pixel coordinates.
        image_id: the image's id, copied into every result.
        category_ids: contiguous class index -> the data set's category id; identity when None.

    Returns:
        N dicts with ``bbox`` in XYWH pixels (floats), ``score``, ``category_id`` and, when
        present, ``segmentation`` (RLE) and ``keypoints`` (flat list of 3K floats, COCO pixel indices).
    """
    num = len(instances)
    if num == 0:
        return []
    boxes = _as_tensor(instances.pred_boxes).detach().to("cpu", torch.float64).clone()
    boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
    boxes = boxes.tolist()
    scores = instances.scores.detach().cpu().tolist()
    classes = instances.pred_classes.detach().cpu().tolist()
    if category_ids is not None:
        classes = [category_ids[c] for c in classes]
    rles = encode_masks(_as_tensor(instances.pred_masks).detach().cpu()) if instances.has("pred_masks") else None
    keypoints = None
    if instances.has("pred_keypoints"):
        keypoints = _as_tensor(instances.pred_keypoints).detach().to("cpu", torch.float64).clone()
        keypoints[:, :, :2] -= KEYPOINT_OFFSET
        keypoints = keypoints.flatten(1).tolist()

    results = []
    for k in range(num):
        result = {"image_id": image_id, "category_id": classes[k], "bbox": boxes[k], "score": scores[k]}
        if rles is not None:
            result["segmentation"] = rles[k]
        if keypoints is not None:
            result["keypoints"] = keypoints[k]
        results.append(result)
    return results


def results_for_task(results: list[dict], task: str) -> list[dict]:
    """The subset of keys pycocotools should see when evaluating `task` ("bbox", "segm", "keypoints").

    Fresh dicts, because ``COCO.loadRes`` writes into them. Segmentation results go without
    their box: loadRes would otherwise take the box's area instead of the mask's.
    Keypoint results keep the box, which loadRes uses for their area (as Detectron2 does).
    """
    key = RESULT_KEYS[task]
    if task == "keypoints":
        return [{"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"],
                 "keypoints": r["keypoints"], "bbox": r["bbox"]} for r in results]
    return [{"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], key: r[key]}
            for r in results]
