"""`PascalVOCDetectionEvaluator`: Pascal VOC box AP, the devkit's algorithm (``VOCevaldet``).

Per class, detections of all images are taken in decreasing score order. Each one is matched to
the ground-truth box of its image it overlaps most (IoU, difficult boxes included); with IoU above
the threshold (strictly) it is

- ignored (neither true nor false positive) if that box is marked ``difficult``,
- a true positive if that box was not matched before, else a false positive (a duplicate);

below the threshold, or in an image without boxes of the class, it is a false positive.
Recall is over the non-difficult boxes. AP is then VOC2007's 11-point mean of the interpolated
precision at recall 0, 0.1, ..., 1, or (VOC2010 on) the area under the interpolated
precision-recall curve; see `voc_ap`.

IoU uses continuous coordinates. The devkit adds 1 to widths and heights of its 1-based
inclusive pixel boxes; records hold those boxes as ``(xmin - 1, ymin - 1, xmax, ymax)``
(`detrun.data.datasets.pascal_voc`), for which plain widths equal the devkit's, so the
overlaps are the devkit's.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.errors import UserError
from detrun.structures import BoxMode
from detrun.utils import comm

from .tables import per_category_table, summary_table

logger = logging.getLogger(__name__)

# Empty arrays of the per-detection columns (class, score, IoU, box id) and of the difficult flags.
_EMPTY = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool))

# Detectron2's "AP": the mean over IoU 0.50, 0.55, ..., 0.95 of the mean AP over classes.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP (0-1) of one precision-recall curve, both float [N] in detection order.

    use_07_metric: VOC2007's 11-point AP, the mean over r in {0, 0.1, ..., 1} of the highest
    precision at recall >= r (0 if recall never reaches r). Otherwise the area under the curve
    whose precision at each recall is the highest precision at that recall or beyond.
    """
    recall, precision = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        points = [precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in np.linspace(0, 1, 11)]
        return float(np.mean(points))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # highest precision at this recall or beyond
    steps = np.flatnonzero(r[1:] != r[:-1])  # where recall grows
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of float [N, 4] and [M, 4] XYXY boxes → [N, M] (0 where a union is empty)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def best_matches(det_boxes: np.ndarray, det_classes: np.ndarray, gt_boxes: np.ndarray,
                 gt_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each detection of one image, the ground-truth box of its class it overlaps most.

    Args: det_boxes float [N, 4] XYXY, det_classes int [N], gt_boxes float [G, 4], gt_classes int [G].
    Returns: IoU float [N] (-1 without a box of the class) and that box's index int [N] (-1: none);
    of equal overlaps the first box, as the devkit.
    """
    iou = box_iou(det_boxes, gt_boxes)
    iou[det_classes[:, None] != gt_classes[None, :]] = -1.0
    if iou.shape[1] == 0:
        return np.full(len(det_boxes), -1.0), np.full(len(det_boxes), -1, dtype=np.int64)
    index = iou.argmax(axis=1)
    best = iou[np.arange(len(index)), index]
    return best, np.where(best >= 0, index, -1)


def class_ap(scores: np.ndarray, best_iou: np.ndarray, best_gt: np.ndarray, difficult: np.ndarray,
             iou_thresholds) -> dict[str, list[float]]:
    """AP (0-1) of one class at each IoU threshold, by the devkit's matching (module docstring).

    Args:
        scores, best_iou, best_gt: float [D], float [D], int [D]: the class's detections (all
            images), each with its best-overlapping box of the class (`best_matches`; box ids
            unique over images, -1 for none).
        difficult: bool, the flag of each of the class's boxes (indexed by those ids).
    Returns:
        {"11pt": [AP per threshold], "area": [...]}; NaN if no box of the class is non-difficult.
    """
    difficult = np.asarray(difficult, dtype=bool)
    num_positives = int((~difficult).sum())
    if num_positives == 0:
        return {"11pt": [math.nan] * len(iou_thresholds), "area": [math.nan] * len(iou_thresholds)}
    order = np.argsort(-np.asarray(scores), kind="stable")
    best_iou, best_gt = np.asarray(best_iou)[order], np.asarray(best_gt)[order]
    aps = {"11pt": [], "area": []}
    for threshold in iou_thresholds:
        hit = best_iou > threshold
        ignored = hit & difficult[np.where(hit, best_gt, 0)]
        candidates = np.flatnonzero(hit & ~ignored)
        # the first (highest-scoring) detection of a box is its true positive, later ones duplicates
        _, first = np.unique(best_gt[candidates], return_index=True)
        tp = np.zeros(len(order), dtype=bool)
        tp[candidates[first]] = True
        tp_cum = np.cumsum(tp[~ignored])
        fp_cum = np.cumsum(~tp[~ignored])
        recall = tp_cum / num_positives
        precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
        aps["11pt"].append(voc_ap(recall, precision, use_07_metric=True))
        aps["area"].append(voc_ap(recall, precision, use_07_metric=False))
    return aps


class PascalVOCDetectionEvaluator:
    """Pascal VOC box AP (percent) of ``outputs[i]["instances"]`` on the data set `dataset_name`.

    Same protocol as `COCOEvaluator`: ``reset()``, ``process(inputs, outputs)`` per batch,
    ``evaluate()`` on every rank (it gathers); rank 0 returns ``{"bbox": {...}}``, others ``{}``:

    - "AP": mean over IoU 0.50:0.95 (step 0.05) of the mean AP over classes; "AP50", "AP75"
      (Detectron2's numbers), each with the data set's metric (`use_07_metric`);
    - "AP50_11pt", "AP50_area": mean AP at IoU 0.5 with each of the two metrics;
    - per class: "AP-<class>" (0.50:0.95), "AP50_11pt-<class>" and "AP50_area-<class>".

    Ground truth is the data set's records (boxes, ``difficult`` flags; crowd regions count as
    difficult) of the processed images, each image once. Classes without a non-difficult box in
    those images get NaN and are left out of the means.

    Args:
        dataset_name: a registered data set (thing_classes in its metadata).
        output_dir: where ``per_category_ap.txt`` is written; nothing is written when None.
        use_07_metric: 11-point AP for "AP"/"AP50"/"AP75"; default: True when the metadata's
            ``year`` is 2007 (as Detectron2), else area under the curve.
        distributed: gather predictions from all ranks in ``evaluate()``.
    """

    output_key = "instances"

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, use_07_metric: bool | None = None,
                 distributed: bool = True):
        if dataset_name not in DatasetCatalog:
            raise UserError(f"PascalVOCDetectionEvaluator: dataset_name={dataset_name!r} is not a registered data set "
                            f"(registered: {', '.join(DatasetCatalog.list())})")
        meta = MetadataCatalog.get(dataset_name)
        self.class_names = list(meta.get("thing_classes") or [])
        if not self.class_names:
            raise UserError(f"PascalVOCDetectionEvaluator: data set {dataset_name!r} has no thing_classes in its metadata")
        self.dataset_name = dataset_name
        self.use_07_metric = bool(meta.get("year") == 2007 if use_07_metric is None else use_07_metric)
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        """Forget the predictions processed so far."""
        self._predictions: dict = {}  # image id → (boxes float [N, 4] XYXY, scores [N], classes int [N])

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Keep each image's boxes (original image coordinates), scores and classes on the CPU."""
        for inp, out in zip(inputs, outputs, strict=True):
            if "instances" not in out:
                raise ValueError(f"PascalVOCDetectionEvaluator needs model outputs with 'instances'; got keys {sorted(out)}")
            instances = out["instances"].to("cpu")
            classes = instances.pred_classes.numpy().astype(np.int64)
            if len(classes) and (classes.min() < 0 or classes.max() >= len(self.class_names)):
                raise UserError(f"predicted class {int(classes.max())} of image {inp['image_id']!r} is not a class of "
                                f"{self.dataset_name!r} ({len(self.class_names)} classes): check model.roi_heads.num_classes")
            self._predictions[inp["image_id"]] = (instances.pred_boxes.tensor.numpy().astype(np.float64),
                                                  instances.scores.numpy().astype(np.float64), classes)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Gather, score and report (see the class docstring); ``{}`` on ranks other than 0."""
        predictions = self._predictions
        if self._distributed:
            gathered = comm.all_gather_object(self._predictions)  # collective: every rank calls it
            if not comm.is_main_process():
                return {}
            predictions = {k: v for part in gathered for k, v in part.items()}  # padded shards repeat images
        if not predictions:
            logger.warning("No predictions on %s: every metric is NaN.", self.dataset_name)
        records = {r["image_id"]: r for r in DatasetCatalog.get(self.dataset_name)}
        unknown = [i for i in predictions if i not in records]
        if unknown:
            raise UserError(f"{len(unknown)} predicted image ids (e.g. {unknown[:3]}) are not images of data set "
                            f"{self.dataset_name!r}: evaluate with the loader of that data set")
        metrics = self.score(predictions, [records[i] for i in predictions])
        logger.info("Pascal VOC evaluation of %s (%d images, %s AP): AP %.2f, AP50 %.2f", self.dataset_name,
                    len(predictions), "11-point" if self.use_07_metric else "area", metrics["AP"], metrics["AP50"])
        results = {"bbox": metrics}
        if self._output_dir is not None:
            self._output_dir.mkdir(parents=True, exist_ok=True)
            (self._output_dir / "per_category_ap.txt").write_text(
                f"{summary_table(results)}\n\n{per_category_table(results)}\n")
        return results

    def score(self, predictions: dict, records: list[dict]) -> dict[str, float]:
        """The metrics (percent) of `predictions` (image id → boxes, scores, classes) on `records`."""
        matched, offset = [], 0  # per image: classes, scores, best IoU, best box (ids over all images)
        gt_classes, gt_difficult = [], []
        for record in records:
            boxes, classes, difficult = _record_boxes(record)
            det_boxes, scores, det_classes = predictions[record["image_id"]]
            best_iou, best = best_matches(det_boxes, det_classes, boxes, classes)
            matched.append((det_classes, scores, best_iou, np.where(best >= 0, best + offset, -1)))
            gt_classes.append(classes)
            gt_difficult.append(difficult)
            offset += len(boxes)
        det_classes, scores, best_iou, best_gt = (np.concatenate([m[i] for m in matched] + [empty])
                                                  for i, empty in enumerate(_EMPTY[:4]))
        gt_classes, gt_difficult = np.concatenate(gt_classes + [_EMPTY[0]]), np.concatenate(gt_difficult + [_EMPTY[4]])
        year = "11pt" if self.use_07_metric else "area"
        per_class = {}  # class name → {"AP": [AP per IoU threshold, the year's metric], "AP50_11pt", "AP50_area"}
        for c, name in enumerate(self.class_names):
            mine = det_classes == c
            boxes_of_c = np.flatnonzero(gt_classes == c)
            local = np.full(len(gt_classes) + 1, -1)  # global box id → index among the class's boxes
            local[boxes_of_c] = np.arange(len(boxes_of_c))
            aps = class_ap(scores[mine], best_iou[mine], local[best_gt[mine]], gt_difficult[boxes_of_c], IOU_THRESHOLDS)
            per_class[name] = {"AP": aps[year], "AP50_11pt": aps["11pt"][0], "AP50_area": aps["area"][0]}

        def mean(values) -> float:  # percent, over the classes with ground truth
            valid = [v for v in values if not math.isnan(v)]
            return 100 * float(np.mean(valid)) if valid else math.nan

        def at(t: int) -> list[float]:
            return [p["AP"][t] for p in per_class.values()]

        metrics = {
            "AP": float(np.mean([mean(at(t)) for t in range(len(IOU_THRESHOLDS))])),
            "AP50": mean(at(0)),
            "AP75": mean(at(IOU_THRESHOLDS.index(0.75))),
            "AP50_11pt": mean([p["AP50_11pt"] for p in per_class.values()]),
            "AP50_area": mean([p["AP50_area"] for p in per_class.values()]),
        }
        for name, p in per_class.items():
            metrics[f"AP-{name}"] = mean(p["AP"])
            metrics[f"AP50_11pt-{name}"] = 100 * p["AP50_11pt"]
            metrics[f"AP50_area-{name}"] = 100 * p["AP50_area"]
        return metrics


def _record_boxes(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A record's ground truth: boxes float [A, 4] XYXY, classes int [A], difficult bool [A]
    (VOC's ``difficult`` flag or a crowd region)."""
    anns = record.get("annotations", [])
    boxes = [BoxMode.convert(a["bbox"], a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS) for a in anns]
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.array([a["category_id"] for a in anns], dtype=np.int64),
            np.array([bool(a.get("difficult", 0) or a.get("iscrowd", 0)) for a in anns], dtype=bool))
