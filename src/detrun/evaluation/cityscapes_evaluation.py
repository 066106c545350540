"""Cityscapes' official metrics: mIoU of the 19 classes and instance-level AP / AP50.

Both go through the official evaluation in ``cityscapesscripts`` (``pip install
'detrun[cityscapes]'``), which reads ground-truth PNGs and prediction files; the predictions
are kept as compact data on each rank and written to a temporary folder on rank 0.
`CityscapesSemSegEvaluator` has a pure-Python fallback computing the same class IoUs
(`cityscapes_class_iou`) when the package is missing. Data sets: `register_cityscapes`'s.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.datasets.cityscapes_labels import (IGNORE_LABEL, STUFF_LABELS, THING_LABELS,
                                                    label_id_to_train_id_table, train_id_to_label_id_table)
from detrun.data.image_io import read_label_map
from detrun.errors import UserError
from detrun.utils import comm

from .coco_results import encode_masks
from .sem_seg_evaluation import confusion_matrix

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "cityscapesscripts", "python")
INSTALL_HINT = "pip install 'detrun[cityscapes]' (the official cityscapesscripts package)"


def cityscapesscripts_available() -> bool:
    """Whether the optional ``cityscapesscripts`` package imports."""
    try:
        import cityscapesscripts.evaluation  # noqa: F401
    except ImportError:
        return False
    return True


def cityscapes_class_iou(conf: np.ndarray) -> np.ndarray:
    """Cityscapes' per-class IoU from a [C + 1, C + 1] [predicted, true] `confusion_matrix`
    (true class C: ignored pixels). float64 [C]: TP / (TP + FP + FN), FP counted on labelled
    pixels only, NaN where TP + FP + FN = 0. Unlike `segmentation_metrics`, a class predicted
    but absent from the ground truth scores 0 (not NaN), as the official script has it."""
    tp = conf.diagonal()[:-1].astype(np.float64)
    denom = conf[:-1, :].sum(axis=0)[:-1] + conf[:-1, :-1].sum(axis=1) - tp  # (TP + FN) + (TP + FP) - TP
    iou = np.full(len(tp), np.nan)
    iou[denom > 0] = tp[denom > 0] / denom[denom > 0]
    return iou


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    return obj.__dict__  # what the package's own writer does for everything


def _write_json(data: dict, file_name: str) -> None:
    Path(file_name).write_text(json.dumps(data, default=_json_default, sort_keys=True, indent=4))


@contextlib.contextmanager
def numpy_compat(*modules):
    """Within the block cityscapesscripts 2.3.0 runs on NumPy 2.4: ``np.in1d`` (which it calls
    and NumPy 2.4 removed; mcordts/cityscapesScripts PR #196 replaces it with ``np.isin``) exists,
    and `modules`' ``writeDict2JSON`` writes NumPy integers (its own writer fails on them)."""
    saved = {m: m.writeDict2JSON for m in modules}
    added = not hasattr(np, "in1d")
    if added:
        np.in1d = lambda ar1, ar2, assume_unique=False, invert=False: np.isin(  # in1d: the flat result
            np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)
    for module in modules:
        module.writeDict2JSON = _write_json
    try:
        yield
    finally:
        if added:
            del np.in1d
        for module, writer in saved.items():
            module.writeDict2JSON = writer


@contextlib.contextmanager
def _official(module, what: str, **settings):
    """Run `module`'s evaluation quietly in a temporary working folder (it writes ``matches.json``
    there) with `settings` on its global ``args``; its ``sys.exit`` on bad input becomes a UserError."""
    for key, value in settings.items():
        setattr(module.args, key, value)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.chdir(settings["predictionPath"]), numpy_compat(module):
            yield
    except SystemExit as exc:
        lines = [line for line in printed.getvalue().splitlines() if line.strip()]
        raise UserError(f"cityscapesscripts' {what} stopped: {lines[-1] if lines else exc}") from None


class _Gathered:
    """Ground-truth files by image id and the all-rank gather both evaluators share."""

    def __init__(self, dataset_name: str, evaluator: str, distributed: bool):
        if dataset_name not in DatasetCatalog:
            raise UserError(f"{evaluator}: dataset_name={dataset_name!r} is not a registered data set; Cityscapes "
                            "sets are cityscapes_fine_{instance_seg,sem_seg}_{train,val} (see README, Data sets)")
        self.dataset_name, self.evaluator, self.distributed = dataset_name, evaluator, distributed
        self._records: dict | None = None

    def record(self, image_id) -> dict:
        if self._records is None:
            self._records = {r["image_id"]: r for r in DatasetCatalog.get(self.dataset_name)}
        record = self._records.get(image_id)
        if record is None or "instance_ids_file" not in record:
            raise UserError(f"{self.evaluator}: image id {image_id!r} is not a Cityscapes image of data set "
                            f"{self.dataset_name!r} (no instance_ids_file); evaluate on a register_cityscapes set")
        return record

    def gather(self, items: list) -> list | None:
        """Every rank's `items` concatenated on rank 0 (None elsewhere)."""
        if not self.distributed:
            return items
        gathered = comm.all_gather_object(items)  # collective: every rank calls it
        return [x for part in gathered for x in part] if comm.is_main_process() else None


class CityscapesSemSegEvaluator:
    """Cityscapes mIoU (percent) of ``outputs[i]["sem_seg"]`` (scores [19, H, W] over the train
    ids, at the original size) against each image's ``labelIds.png``.

    ``evaluate()`` returns on rank 0 ``{"sem_seg": {"mIoU", "IoU-<class>"...}}``; through
    cityscapesscripts also its instance-weighted ``iIoU`` and the category-level ``IoU_sup`` and
    ``iIoU_sup`` (Detectron2's names). ``{}`` on other ranks.

    Args:
        dataset_name: a Cityscapes set (`register_cityscapes`, either task).
        output_dir: unused (evaluators take it).
        backend: "cityscapesscripts" (the official evaluation; UserError when missing), "python"
            (`cityscapes_class_iou`, same mIoU), or "auto": the official one when installed.
        distributed: gather all ranks' predictions.
    """

    output_key = "sem_seg"

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, backend: str = "auto",
                 distributed: bool = True):
        if backend not in BACKENDS:
            raise UserError(f"CityscapesSemSegEvaluator: backend={backend!r} is not one of {BACKENDS}")
        available = cityscapesscripts_available()
        if backend == "cityscapesscripts" and not available:
            raise UserError(f"CityscapesSemSegEvaluator(backend='cityscapesscripts') needs {INSTALL_HINT}")
        if backend == "auto" and not available:
            logger.info("cityscapesscripts is not installed: mIoU computed in Python (same value; no iIoU). %s",
                        INSTALL_HINT)
        if backend == "auto":
            backend = "cityscapesscripts" if available else "python"
        self.backend = backend
        self._data = _Gathered(dataset_name, type(self).__name__, distributed)
        self.class_names = [label.name for label in STUFF_LABELS]
        self.reset()

    def reset(self) -> None:
        n = len(self.class_names) + 1
        self._conf = np.zeros((n, n), dtype=np.int64)
        self._predictions: list[tuple] = []  # (image id, label-id PNG bytes) for the official script

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Keep each image's predicted train ids (as a label-id PNG, or in the confusion matrix)."""
        for inp, out in zip(inputs, outputs, strict=True):
            if "sem_seg" not in out:
                raise ValueError(f"CityscapesSemSegEvaluator needs model outputs with 'sem_seg'; got keys {sorted(out)}")
            if out["sem_seg"].shape[0] != len(self.class_names):
                raise UserError(f"the model predicts {out['sem_seg'].shape[0]} semantic classes; Cityscapes has "
                                f"{len(self.class_names)} train ids ({', '.join(self.class_names)})")
            pred = out["sem_seg"].argmax(dim=0).cpu().numpy().astype(np.uint8)
            record = self._data.record(inp["image_id"])
            if self.backend == "python":
                gt = label_id_to_train_id_table()[read_label_map(record["label_ids_file"]).clip(0, 255)]
                if gt.shape != pred.shape:
                    raise ValueError(f"prediction {pred.shape} and label map {gt.shape} of image {inp['image_id']!r} "
                                     "differ in size: outputs must be at the input's height x width")
                self._conf += confusion_matrix(pred, gt, len(self.class_names), IGNORE_LABEL)
            else:
                png = io.BytesIO()
                Image.fromarray(train_id_to_label_id_table()[pred]).save(png, format="PNG", compress_level=1)
                self._predictions.append((inp["image_id"], png.getvalue()))

    def evaluate(self) -> dict[str, dict[str, float]]:
        if self.backend == "python":
            conf = self._data.gather([self._conf])
            if conf is None:
                return {}
            iou = 100 * cityscapes_class_iou(sum(conf))
            metrics = {"mIoU": float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan")}
            metrics.update({f"IoU-{name}": float(v) for name, v in zip(self.class_names, iou)})
        else:
            predictions = self._data.gather(self._predictions)
            if predictions is None:
                return {}
            metrics = self._official(dict(predictions)) if predictions else {"mIoU": float("nan")}
        logger.info("Cityscapes semantic segmentation of %s: mIoU %.2f (%s)", self._data.dataset_name,
                    metrics["mIoU"], self.backend)
        return {"sem_seg": metrics}

    def _official(self, predictions: dict) -> dict[str, float]:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

        with tempfile.TemporaryDirectory(prefix="cityscapes_sem_seg_") as tmp:
            pred_files, gt_files = [], []
            for image_id, png in predictions.items():
                gt = self._data.record(image_id)["label_ids_file"]
                pred_files.append(os.path.join(tmp, Path(gt).name.replace("_gtFine_labelIds", "_pred")))
                Path(pred_files[-1]).write_bytes(png)
                gt_files.append(gt)
            with _official(official, "pixel-level evaluation", predictionPath=tmp, predictionWalk=None, quiet=True,
                           JSONOutput=False, colorized=False, evalInstLevelScore=True, evalPixelAccuracy=False):
                result = official.evaluateImgLists(pred_files, gt_files, official.args)
        metrics = {"mIoU": 100 * result["averageScoreClasses"], "iIoU": 100 * result["averageScoreInstClasses"],
                   "IoU_sup": 100 * result["averageScoreCategories"],
                   "iIoU_sup": 100 * result["averageScoreInstCategories"]}
        metrics.update({f"IoU-{name}": 100 * result["classScores"][name] for name in self.class_names})
        return metrics


class CityscapesInstanceEvaluator:
    """Cityscapes instance-level AP and AP50 (percent) of ``outputs[i]["instances"]`` (with
    ``pred_masks``, classes 0..7 of `THING_LABELS`), through cityscapesscripts'
    ``evalInstanceLevelSemanticLabeling`` against each image's ``instanceIds.png``.

    Each image's predictions become the files that script reads (``<image>_pred.txt`` listing
    ``<mask>.png <label id> <score>`` lines, one mask PNG per instance), written on rank 0 into a
    temporary folder. ``evaluate()`` returns on rank 0 ``{"segm": {"AP", "AP50", "AP-<class>"...}}``.

    Args:
        dataset_name: a Cityscapes instance set (`register_cityscapes`).
        output_dir: unused (evaluators take it).
        distributed: gather all ranks' predictions.
    """

    output_key = "instances"

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, distributed: bool = True):
        if not cityscapesscripts_available():
            raise UserError(f"CityscapesInstanceEvaluator needs {INSTALL_HINT}")
        self._data = _Gathered(dataset_name, type(self).__name__, distributed)
        self.class_names = [label.name for label in THING_LABELS]
        self.reset()

    def reset(self) -> None:
        self._predictions: list[tuple] = []  # (image id, label ids, scores, mask RLEs)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Keep each image's detections: Cityscapes label id, score and mask (as RLE)."""
        for inp, out in zip(inputs, outputs, strict=True):
            instances = out["instances"].to("cpu")
            if not instances.has("pred_masks"):
                raise UserError("CityscapesInstanceEvaluator scores masks, but the model's instances have no "
                                "pred_masks; use a model with a mask head (Mask R-CNN)")
            classes = instances.pred_classes.tolist()
            if any(c < 0 or c >= len(THING_LABELS) for c in classes):
                raise UserError(f"predicted classes {sorted(set(classes))} are not all in 0..{len(THING_LABELS) - 1} "
                                f"(Cityscapes' {len(THING_LABELS)} instance classes)")
            self._data.record(inp["image_id"])  # an image of the data set, before the costly part
            self._predictions.append((inp["image_id"], [THING_LABELS[c].id for c in classes],
                                      instances.scores.tolist(), encode_masks(instances.pred_masks)))

    def evaluate(self) -> dict[str, dict[str, float]]:
        predictions = self._data.gather(self._predictions)
        if predictions is None:
            return {}
        if not predictions:
            logger.warning("CityscapesInstanceEvaluator: no images were processed; AP is NaN")
            return {"segm": {"AP": float("nan"), "AP50": float("nan")}}
        from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as official

        with tempfile.TemporaryDirectory(prefix="cityscapes_instances_") as tmp:
            pred_files, gt_files = [], []
            for image_id, label_ids, scores, rles in predictions:
                gt = self._data.record(image_id)["instance_ids_file"]
                core = Path(gt).name.replace("_gtFine_instanceIds.png", "")
                lines = []
                for k, (label_id, score, rle) in enumerate(zip(label_ids, scores, rles)):
                    mask = mask_util.decode({**rle, "counts": rle["counts"].encode("ascii")})
                    Image.fromarray(mask * 255).save(os.path.join(tmp, f"{core}_{k}.png"), compress_level=1)
                    lines.append(f"{core}_{k}.png {label_id} {score:.6f}\n")
                pred_files.append(os.path.join(tmp, f"{core}_pred.txt"))
                Path(pred_files[-1]).write_text("".join(lines))
                gt_files.append(gt)
            with _official(official, "instance-level evaluation", predictionPath=os.path.abspath(tmp),
                           predictionWalk=None, quiet=True, JSONOutput=False, colorized=False,
                           gtInstancesFile=os.path.join(tmp, "gtInstances.json")):
                averages = official.evaluateImgLists(pred_files, gt_files, official.args)["averages"]
        metrics = {"AP": 100 * float(averages["allAp"]), "AP50": 100 * float(averages["allAp50%"])}
        metrics.update({f"AP-{name}": 100 * float(averages["classes"][name]["ap"]) for name in self.class_names})
        logger.info("Cityscapes instance segmentation of %s: AP %.2f, AP50 %.2f", self._data.dataset_name,
                    metrics["AP"], metrics["AP50"])
        return {"segm": metrics}
