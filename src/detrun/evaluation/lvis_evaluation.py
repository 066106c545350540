"""`LVISEvaluator`: LVIS box / mask AP (federated evaluation) through the ``lvis`` package.

LVIS is annotated federatedly: on each image only the categories verified present (its
annotations) or absent (``neg_category_ids``) are judged. ``LVISEval`` drops a detection of
any other category, ignores unmatched detections of ``not_exhaustive_category_ids``, keeps
300 detections per image and reports AP by category frequency (APr, APc, APf).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detrun.errors import UserError

from .coco_evaluator import COCOEvaluator
from .coco_results import results_for_task

TASKS = ("bbox", "segm")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
INSTALL_HINT = "pip install 'detrun[lvis]'"


def import_lvis() -> Any:
    """The ``lvis`` package, or a UserError saying how to install it."""
    try:
        import lvis
    except ImportError as exc:
        raise UserError(f"LVIS evaluation needs the lvis package (LVIS's official evaluation API): "
                        f"{INSTALL_HINT}") from exc
    return lvis


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Let ``LVISEval`` run on NumPy >= 1.24: lvis 0.5.3, its latest release, calls ``np.float``
    (an alias of ``float`` that NumPy removed). Restored on exit."""
    missing = "float" not in np.__dict__
    if missing:
        np.float = float
    try:
        yield
    finally:
        if missing:
            del np.float


def run_lvis_eval(lvis_gt: Any, results: list[dict], task: str, *, img_ids: Sequence | None = None,
                  max_dets: int = 300) -> Any:
    """Run ``LVISEval`` (evaluate, accumulate, summarize) and return it.

    Args:
        lvis_gt: an ``lvis.LVIS`` of the ground truth.
        results: COCO-format result dicts (``image_id``, ``category_id``, ``score`` and ``bbox``
            for task "bbox", ``segmentation`` (RLE) for "segm"); not changed.
        task: "bbox" or "segm".
        img_ids: images to score (default: every image of `lvis_gt`).
        max_dets: detections kept per image, highest scores first (LVIS: 300).
    """
    lvis = import_lvis()
    with numpy_float_alias():
        lvis_dt = lvis.LVISResults(lvis_gt, results_for_task(results, task), max_dets=max_dets)
        lvis_eval = lvis.LVISEval(lvis_gt, lvis_dt, task)
        if img_ids is not None:
            lvis_eval.params.img_ids = sorted(img_ids)
        lvis_eval.run()
    return lvis_eval


def lvis_metrics(lvis_eval: Any, class_names: Sequence[str]) -> dict[str, float]:
    """`METRICS` and ``AP-<class>`` in percent from a run ``LVISEval``; NaN where it reports -1
    (no ground truth in that range or group)."""
    results = lvis_eval.get_results()
    metrics = {name: float(results[name]) * 100 if results[name] > -1 else math.nan for name in METRICS}
    # precision: [IoU thresholds, recall thresholds, categories, area ranges (0 = all)]
    precision = lvis_eval.eval["precision"]
    for k, name in enumerate(class_names):
        valid = precision[:, :, k, 0][precision[:, :, k, 0] > -1]
        metrics[f"AP-{name}"] = float(np.mean(valid)) * 100 if valid.size else math.nan
    return metrics


class LVISEvaluator(COCOEvaluator):
    """LVIS AP (percent) of predictions on the LVIS data set `dataset_name`, through ``lvis.LVISEval``.

    The interface is COCOEvaluator's (``reset()``, ``process(inputs, outputs)``, ``evaluate()``
    on every rank; rank 0 gets ``{"bbox": {...}, "segm": {...}}`` with AP, AP50, AP75, APs,
    APm, APl, APr, APc, APf and AP-<class>). Ground truth is the data set's LVIS JSON (metadata
    ``json_file``); only processed images are scored. Needs ``pip install 'detrun[lvis]'``.
    """

    def __init__(self, dataset_name: str, *, output_dir: str | None = None, tasks: Sequence[str] | None = None,
                 distributed: bool = True, max_dets_per_image: int = 300):
        """
        Args:
            dataset_name: a registered LVIS data set (e.g. ``lvis_v1_val``).
            output_dir: where the predictions JSON and per-category table go; nothing when None.
            tasks: subset of ("bbox", "segm"); default bbox, and segm when the model predicts masks.
            distributed: gather predictions from all ranks to rank 0 in ``evaluate()``.
            max_dets_per_image: detections scored per image (LVIS: 300).
        """
        import_lvis()
        if tasks is not None and (not tasks or set(tasks) - set(TASKS)):
            raise UserError(f"evaluator.tasks={list(tasks)} must be a non-empty subset of {list(TASKS)} for LVIS")
        super().__init__(dataset_name, output_dir=output_dir, tasks=tasks, distributed=distributed,
                         backend="pycocotools", max_dets_per_image=max_dets_per_image)
        self._backend = "lvis"  # what `backend` and the evaluation's log line name
        self._class_names: list[str] = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """As COCOEvaluator's; predicted keypoints, which LVIS does not score, ask for no task."""
        start = len(self._predictions)
        super().process(inputs, outputs)
        for p in self._predictions[start:]:
            p["tasks"] = [t for t in p["tasks"] if t in TASKS]

    def _ground_truth(self) -> Any:
        """``lvis.LVIS`` of the data set's JSON (read once, then kept)."""
        if self._coco_gt is None:
            json_file = self._metadata.get("json_file")
            if not json_file or not Path(json_file).is_file():
                raise UserError(f"LVIS evaluation of {self.dataset_name!r} needs its LVIS json_file (metadata "
                                f"json_file is {json_file!r}); register the data set with "
                                "detrun.data.register_lvis_instances")
            self._coco_gt = import_lvis().LVIS(str(json_file))
            cats = sorted(self._coco_gt.dataset["categories"], key=lambda c: c["id"])
            self._class_names = [c["name"] for c in cats]
        return self._coco_gt

    def _evaluate_task(self, lvis_gt: Any, results: list[dict], task: str, image_ids: list) -> dict[str, float]:
        if not results:
            return {**{name: 0.0 for name in METRICS}, **{f"AP-{n}": 0.0 for n in self._class_names}}
        if task == "segm" and "segmentation" not in results[0]:
            raise UserError("evaluator.tasks includes 'segm' but the model's predictions have no pred_masks")
        return lvis_metrics(run_lvis_eval(lvis_gt, results, task, img_ids=image_ids, max_dets=self._max_dets),
                            self._class_names)
