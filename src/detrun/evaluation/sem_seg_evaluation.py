"""`SemSegEvaluator`: mIoU, fwIoU, mACC, pACC and per-class IoU / accuracy of semantic segmentation."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.image_io import read_label_map
from detrun.errors import UserError
from detrun.utils import comm

logger = logging.getLogger(__name__)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
    """int64 [C + 1, C + 1] counts indexed [predicted, true]; ignored pixels count in the last
    column (true class C), which the metrics leave out (as Detectron2's evaluator does)."""
    gt = np.asarray(gt, dtype=np.int64).copy()
    pred = np.asarray(pred, dtype=np.int64)
    ignored = gt == ignore_label
    bad = (~ignored) & ((gt < 0) | (gt >= num_classes))
    if bad.any():
        raise ValueError(f"label map has labels {sorted(set(np.unique(gt[bad]).tolist()))[:5]} outside 0..{num_classes - 1} "
                         f"that are not the ignore label {ignore_label}")
    gt[ignored] = num_classes
    n = num_classes + 1
    return np.bincount(n * pred.reshape(-1) + gt.reshape(-1), minlength=n * n).reshape(n, n)


def segmentation_metrics(conf: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Detectron2's semantic metrics (percent) from a [C + 1, C + 1] [predicted, true] matrix.

    IoU_c = TP / (TP + FP + FN) and ACC_c = TP / (pixels of class c) over labelled pixels; a class
    with no labelled pixel has NaN for both and is left out of the means. mIoU and mACC: plain
    means; fwIoU: IoU weighted by class frequency; pACC: correct / labelled pixels.
    """
    num_classes = len(class_names)
    acc = np.full(num_classes, np.nan)
    iou = np.full(num_classes, np.nan)
    tp = conf.diagonal()[:-1].astype(np.float64)
    pos_gt = conf[:-1, :-1].sum(axis=0).astype(np.float64)
    pos_pred = conf[:-1, :-1].sum(axis=1).astype(np.float64)
    class_weights = pos_gt / max(pos_gt.sum(), 1.0)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    nan = float("nan")
    res = {
        "mIoU": 100 * float(iou[iou_valid].mean()) if iou_valid.any() else nan,
        "fwIoU": 100 * float((iou[iou_valid] * class_weights[iou_valid]).sum()) if iou_valid.any() else nan,
    }
    res.update({f"IoU-{name}": 100 * float(iou[i]) for i, name in enumerate(class_names)})
    res["mACC"] = 100 * float(acc[acc_valid].mean()) if acc_valid.any() else nan
    res["pACC"] = 100 * float(tp.sum() / pos_gt.sum()) if pos_gt.sum() > 0 else nan
    res.update({f"ACC-{name}": 100 * float(acc[i]) for i, name in enumerate(class_names)})
    return res


class SemSegEvaluator:
    """Semantic segmentation metrics of ``outputs[i]["sem_seg"]`` (scores Tensor[C, H, W] at the
    original image size; the argmax is the prediction) against each record's ``sem_seg_file_name``.

    ``evaluate()`` returns on rank 0 ``{"sem_seg": {"mIoU", "fwIoU", "mACC", "pACC",
    "IoU-<class>", "ACC-<class>"...}}`` in percent (see `segmentation_metrics`), ``{}`` elsewhere.

    Args:
        dataset_name: a registered data set whose records have ``sem_seg_file_name``.
        output_dir: unused (evaluators take it; nothing is written).
        class_names: default the metadata's ``stuff_classes`` (for a panoptic set: "things" and
            the stuff classes).
        ignore_label: default the metadata's ``ignore_label``, else 255.
        distributed: sum the confusion matrices of all ranks.
    """

    output_key = "sem_seg"  # the model output it scores (instance evaluators: "instances")

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, class_names: Sequence[str] | None = None,
                 ignore_label: int | None = None, distributed: bool = True):
        if dataset_name not in DatasetCatalog:
            raise UserError(f"SemSegEvaluator: dataset_name={dataset_name!r} is not a registered data set")
        meta = MetadataCatalog.get(dataset_name)
        self.dataset_name = dataset_name
        self.class_names = list(class_names if class_names is not None else meta.get("stuff_classes") or [])
        if not self.class_names:
            raise UserError(f"SemSegEvaluator: data set {dataset_name!r} has no stuff_classes in its metadata; "
                            "pass class_names=[...]")
        self.ignore_label = int(ignore_label if ignore_label is not None else meta.get("ignore_label", 255))
        self._distributed = distributed
        self._label_files: dict | None = None
        self.reset()

    def reset(self) -> None:
        n = len(self.class_names) + 1
        self._conf = np.zeros((n, n), dtype=np.int64)
        self._images = 0

    def _label_file(self, inputs: dict) -> str:
        if self._label_files is None:
            self._label_files = {r["image_id"]: r.get("sem_seg_file_name") for r in DatasetCatalog.get(self.dataset_name)}
        path = self._label_files.get(inputs["image_id"])
        if not path:
            raise UserError(f"SemSegEvaluator: image id {inputs['image_id']!r} has no sem_seg_file_name in data set "
                            f"{self.dataset_name!r}; evaluate with that data set's loader")
        return path

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Add each image's pixels to the confusion matrix (ground truth read from its label PNG)."""
        for inp, out in zip(inputs, outputs, strict=True):
            if "sem_seg" not in out:
                raise ValueError(f"SemSegEvaluator needs model outputs with 'sem_seg'; got keys {sorted(out)}")
            scores = out["sem_seg"]
            if scores.shape[0] != len(self.class_names):
                raise UserError(f"the model predicts {scores.shape[0]} semantic classes but data set "
                                f"{self.dataset_name!r} has {len(self.class_names)} ({self.class_names})")
            pred = scores.argmax(dim=0).cpu().numpy()
            gt = read_label_map(self._label_file(inp), image_id=inp.get("image_id"))
            if gt.shape != pred.shape:
                raise ValueError(f"prediction {pred.shape} and label map {gt.shape} of image {inp['image_id']!r} "
                                 "differ in size: outputs must be at the input's height x width")
            self._conf += confusion_matrix(pred, gt, len(self.class_names), self.ignore_label)
            self._images += 1

    def evaluate(self) -> dict[str, dict[str, float]]:
        conf, images = self._conf, self._images
        if self._distributed:
            gathered = comm.all_gather_object((self._conf, self._images))  # collective: every rank calls it
            if not comm.is_main_process():
                return {}
            conf = sum(c for c, _ in gathered)
            images = sum(n for _, n in gathered)
        metrics = segmentation_metrics(conf, self.class_names)
        logger.info("Semantic segmentation of %s (%d images): mIoU %.2f, pACC %.2f", self.dataset_name, images,
                    metrics["mIoU"], metrics["pACC"])
        return {"sem_seg": metrics}
