"""`COCOPanopticEvaluator`: panoptic quality (PQ, SQ, RQ) as the COCO panoptic API computes it.

`pq_stats` follows ``panopticapi.evaluation.pq_compute_single_core`` step by step (Kirillov et
al., "Panoptic Segmentation", 2019, with the API's conventions):

- a predicted and a ground-truth segment of the same category match when IoU > 0.5, where the
  union leaves out the prediction's pixels that are void (id 0) in the ground truth; ground-truth
  areas are the JSON's ``area``, predicted areas are counted in the prediction;
- crowd ground truth never matches; unmatched non-crowd ground truth is a false negative;
- an unmatched prediction is a false positive unless more than half of it lies on void or on a
  crowd region of its category (the last crowd segment of that category listed in the image);
- per category PQ = Σ IoU / (TP + ½FP + ½FN), SQ = Σ IoU / TP, RQ = TP / (TP + ½FP + ½FN);
  categories with no TP, FP or FN are left out of the averages ("All", "Things", "Stuff").
"""
from __future__ import annotations

import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.datasets.coco_panoptic import id2rgb, read_panoptic_json, read_panoptic_png, rgb2id
from detrun.errors import UserError
from detrun.utils import comm

from .json_files import to_json

logger = logging.getLogger(__name__)

VOID = 0
OFFSET = 256 * 256 * 256  # segment ids are < 256³ (24-bit PNG colours)


@dataclass
class PQStatCategory:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


def pq_stats(gt_ids: np.ndarray, gt_segments: list[dict], pred_ids: np.ndarray, pred_segments: list[dict],
             stats: dict[int, PQStatCategory] | None = None) -> dict[int, PQStatCategory]:
    """Add one image's matches to `stats` (category id → counts) and return it.

    Args:
        gt_ids, pred_ids: int [H, W] segment ids (0: void).
        gt_segments: the ground truth's segments_info (``id``, ``category_id``, ``iscrowd``, ``area``).
        pred_segments: the prediction's (``id``, ``category_id``); every listed id must be in
            `pred_ids` and every non-zero id of `pred_ids` listed (KeyError otherwise, as in the API).
    """
    stats = stats if stats is not None else defaultdict(PQStatCategory)
    gt_segms = {int(s["id"]): s for s in gt_segments}
    pred_segms = {int(s["id"]): dict(s) for s in pred_segments}
    pred_area = {}
    labels, counts = np.unique(pred_ids, return_counts=True)
    for label, count in zip(labels.tolist(), counts.tolist()):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise KeyError(f"segment {label} is in the predicted PNG but not in its segments_info")
        pred_area[label] = count
    missing = set(pred_segms) - set(pred_area)
    if missing:
        raise KeyError(f"segments {sorted(missing)} are in the predicted segments_info but not in its PNG")

    joint = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
    labels, counts = np.unique(joint, return_counts=True)
    overlap = {(int(k // OFFSET), int(k % OFFSET)): int(c) for k, c in zip(labels.tolist(), counts.tolist())}

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in overlap.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        gt = gt_segms[gt_label]
        if gt.get("iscrowd", 0) == 1 or gt["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = pred_area[pred_label] + gt["area"] - intersection - overlap.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            stats[gt["category_id"]].tp += 1
            stats[gt["category_id"]].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_by_category = {}
    for gt_label, gt in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt.get("iscrowd", 0) == 1:
            crowd_by_category[gt["category_id"]] = gt_label
            continue
        stats[gt["category_id"]].fn += 1

    for pred_label, pred in pred_segms.items():
        if pred_label in pred_matched:
            continue
        ignored = overlap.get((VOID, pred_label), 0)
        if pred["category_id"] in crowd_by_category:
            ignored += overlap.get((crowd_by_category[pred["category_id"]], pred_label), 0)
        if ignored / pred_area[pred_label] > 0.5:
            continue
        stats[pred["category_id"]].fp += 1
    return stats


def pq_average(stats: dict[int, PQStatCategory], categories: dict[int, dict], isthing: bool | None
               ) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """({"pq", "sq", "rq", "n"}, per category) over `categories` (id → {"isthing", ...}), all of them
    or only things / stuff; fractions in [0, 1]. With no category to average, pq/sq/rq are NaN
    (the API divides by zero there)."""
    pq = sq = rq = 0.0
    n = 0
    per_class = {}
    for cat_id, info in categories.items():
        if isthing is not None and bool(info.get("isthing", 0)) != isthing:
            continue
        s = stats.get(cat_id, PQStatCategory())
        if s.tp + s.fp + s.fn == 0:
            per_class[cat_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
            continue
        n += 1
        denominator = s.tp + 0.5 * s.fp + 0.5 * s.fn
        per_class[cat_id] = {"pq": s.iou / denominator, "sq": s.iou / s.tp if s.tp else 0.0,
                             "rq": s.tp / denominator}
        pq += per_class[cat_id]["pq"]
        sq += per_class[cat_id]["sq"]
        rq += per_class[cat_id]["rq"]
    if n == 0:
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}, per_class
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class


def panoptic_metrics(stats: dict[int, PQStatCategory], categories: dict[int, dict]) -> dict[str, float]:
    """Detectron2's result keys (percent): PQ, SQ, RQ; PQ_th, SQ_th, RQ_th (things); PQ_st,
    SQ_st, RQ_st (stuff); and PQ-<category name> per category."""
    out = {}
    per_class = {}
    for suffix, isthing in (("", None), ("_th", True), ("_st", False)):
        averages, classes = pq_average(stats, categories, isthing)
        per_class.update(classes)
        for key in ("pq", "sq", "rq"):
            out[key.upper() + suffix] = 100 * averages[key]
    for cat_id, info in categories.items():
        out[f"PQ-{info['name']}"] = 100 * per_class[cat_id]["pq"]
    return out


class COCOPanopticEvaluator:
    """PQ / SQ / RQ of ``outputs[i]["panoptic_seg"]`` on a registered panoptic data set.

    ``panoptic_seg`` is (int Tensor[H, W] segment ids, 0 void; segment dicts ``{"id",
    "category_id", "isthing"}``) with contiguous category ids, as `PanopticFPN` makes it: a thing's
    index into thing_classes, a stuff's into stuff_classes (1..S). Dicts without ``isthing`` carry
    the data set's category ids already. Ground truth: the metadata's ``panoptic_json`` and
    ``panoptic_root``. ``evaluate()`` returns on rank 0 ``{"panoptic_seg": {"PQ", "SQ", "RQ",
    "PQ_th", ..., "PQ_st", ..., "PQ-<category>"...}}`` (percent, see `panoptic_metrics`), ``{}``
    elsewhere; only processed images are scored. With `output_dir`, the predictions are written
    there in COCO panoptic format (``predictions.json`` + ``panoptic_predictions/*.png``).
    """

    output_key = "panoptic_seg"  # the model output it scores (instance evaluators: "instances")

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, distributed: bool = True):
        if dataset_name not in DatasetCatalog:
            raise UserError(f"COCOPanopticEvaluator: dataset_name={dataset_name!r} is not a registered data set")
        meta = MetadataCatalog.get(dataset_name)
        if meta.get("panoptic_json") is None:
            raise UserError(f"COCOPanopticEvaluator: data set {dataset_name!r} is not a panoptic set (its metadata "
                            "has no panoptic_json); register it with detrun.data.register_coco_panoptic")
        self.dataset_name = dataset_name
        self._meta = meta
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._predictions: list[dict] = []

    def _dataset_ids(self) -> tuple[dict[int, int], dict[int, int]]:
        things = {int(v): int(k) for k, v in self._meta.thing_dataset_id_to_contiguous_id.items()}
        stuff = {int(v): int(k) for k, v in self._meta.stuff_dataset_id_to_contiguous_id.items()}
        return things, stuff

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Keep each image's prediction as a PNG (ids as colours) plus its segments, with dataset category ids."""
        things, stuff = self._dataset_ids()
        for inp, out in zip(inputs, outputs, strict=True):
            if "panoptic_seg" not in out:
                raise ValueError(f"COCOPanopticEvaluator needs model outputs with 'panoptic_seg'; got keys {sorted(out)}")
            ids, segments = out["panoptic_seg"]
            ids = ids.cpu().numpy().astype(np.int64)
            present = set(np.unique(ids).tolist())
            converted = []
            for seg in segments:
                if int(seg["id"]) not in present:
                    # e.g. a stuff region whose pixels all went to instances: nothing to score
                    continue
                seg = {k: v for k, v in seg.items() if k in ("id", "category_id", "isthing", "score")}
                isthing = seg.pop("isthing", None)
                if isthing is not None:
                    table = things if isthing else stuff
                    if seg["category_id"] not in table:
                        raise UserError(f"predicted {'thing' if isthing else 'stuff'} class {seg['category_id']} "
                                        f"is not a class of data set {self.dataset_name!r}")
                    seg["category_id"] = table[seg["category_id"]]
                converted.append(seg)
            buffer = io.BytesIO()
            Image.fromarray(id2rgb(ids)).save(buffer, format="PNG", compress_level=1)
            self._predictions.append({"image_id": inp["image_id"], "png": buffer.getvalue(), "segments_info": converted})

    def evaluate(self) -> dict[str, dict[str, float]]:
        predictions = self._predictions
        if self._distributed:
            gathered = comm.all_gather_object(self._predictions)  # collective: every rank calls it
            if not comm.is_main_process():
                return {}
            predictions = [p for rank in gathered for p in rank]
        unique = {}
        for p in predictions:
            unique.setdefault(p["image_id"], p)
        gt_json = read_panoptic_json(self._meta.panoptic_json)
        gt_by_image = {a["image_id"]: a for a in gt_json["annotations"]}
        categories = {c["id"]: c for c in gt_json["categories"]}
        unknown = [i for i in unique if i not in gt_by_image]
        if unknown:
            raise UserError(f"{len(unknown)} predicted image ids (e.g. {unknown[:3]}) have no panoptic ground truth "
                            f"in {self._meta.panoptic_json}")
        stats: dict[int, PQStatCategory] = defaultdict(PQStatCategory)
        for image_id, pred in unique.items():
            gt = gt_by_image[image_id]
            pred_ids = rgb2id(np.asarray(Image.open(io.BytesIO(pred["png"])).convert("RGB")))
            gt_ids = read_panoptic_png(Path(self._meta.panoptic_root) / gt["file_name"])
            unknown_cats = {s["category_id"] for s in pred["segments_info"]} - set(categories)
            if unknown_cats:
                raise UserError(f"predicted category ids {sorted(unknown_cats)} are not categories of {self.dataset_name!r}")
            pq_stats(gt_ids, gt["segments_info"], pred_ids, pred["segments_info"], stats)
        if self._output_dir is not None:
            self._write(unique, gt_by_image)
        metrics = panoptic_metrics(stats, categories)
        logger.info("Panoptic evaluation of %s (%d images): PQ %.2f (things %.2f, stuff %.2f)", self.dataset_name,
                    len(unique), metrics["PQ"], metrics["PQ_th"], metrics["PQ_st"])
        return {"panoptic_seg": metrics}

    def _write(self, predictions: dict, gt_by_image: dict) -> None:
        folder = self._output_dir / "panoptic_predictions"
        folder.mkdir(parents=True, exist_ok=True)
        annotations = []
        for image_id, pred in predictions.items():
            file_name = gt_by_image[image_id]["file_name"]
            (folder / file_name).write_bytes(pred["png"])
            annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": pred["segments_info"]})
        (self._output_dir / "predictions.json").write_text(to_json({"annotations": annotations}))
