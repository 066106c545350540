"""The COCO evaluation engines: pycocotools (the reference) and faster-coco-eval (optional, C++).

Both expose the same ``COCO`` / ``COCOeval`` API; this module hides which one runs and keeps
their progress prints out of our logs. ``backend="auto"`` picks faster-coco-eval only when it is
installed *and* agrees with pycocotools to `PARITY_TOLERANCE` on a built-in check
(see `detrun.evaluation.backend_parity`), so a future release that drifts falls back by itself.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from detrun.errors import UserError

logger = logging.getLogger(__name__)

BACKENDS = ("pycocotools", "faster_coco_eval")
# AP is reported in percent; 1e-4 percent is far below any difference anyone reads.
PARITY_TOLERANCE = 1e-4


def _silent(*args: Any, **kwargs: Any) -> None:
    """faster-coco-eval's print hook: we report metrics ourselves."""


def faster_coco_eval_installed() -> bool:
    return importlib.util.find_spec("faster_coco_eval") is not None


@functools.cache
def _faster_backend_agrees() -> bool:
    from .backend_parity import backend_parity_gap

    gap = backend_parity_gap()
    if gap > PARITY_TOLERANCE:
        logger.warning(
            "faster-coco-eval differs from pycocotools by %.3g AP points on the parity check "
            "(tolerance %g); evaluating with pycocotools.", gap, PARITY_TOLERANCE,
        )
    return gap <= PARITY_TOLERANCE


def resolve_backend(backend: str) -> str:
    """Map "auto" / "pycocotools" / "faster_coco_eval" to the engine that will run.

    "auto" means faster-coco-eval when installed and in parity with pycocotools, else pycocotools.
    Asking for faster_coco_eval explicitly when it is not installed is an error.
    """
    if backend == "auto":
        use_faster = faster_coco_eval_installed() and _faster_backend_agrees()
        return "faster_coco_eval" if use_faster else "pycocotools"
    if backend not in BACKENDS:
        raise UserError(f"evaluator.backend={backend!r} is not one of auto, {', '.join(BACKENDS)}")
    if backend == "faster_coco_eval" and not faster_coco_eval_installed():
        raise UserError(
            "evaluator.backend=faster_coco_eval needs the faster-coco-eval package: "
            "pip install 'detrun[fasteval]' (or use evaluator.backend=pycocotools)"
        )
    return backend


def load_coco(dataset: dict, backend: str) -> Any:
    """A ``COCO`` ground-truth object of `backend` built from an in-memory COCO dict."""
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO

        return COCO(dataset, print_function=_silent)
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def run_cocoeval(
    coco_gt: Any,
    results: list[dict],
    iou_type: str,
    *,
    backend: str,
    img_ids: Sequence | None = None,
    max_dets: int = 100,
    kpt_oks_sigmas: Sequence[float] | None = None,
) -> Any:
    """Run ``evaluate`` and ``accumulate`` of `backend` and return the COCOeval object.

    Args:
        coco_gt: ground truth from `load_coco` with the same `backend`.
        results: non-empty COCO result dicts for `iou_type` (loadRes modifies them in place).
        iou_type: "bbox", "segm" or "keypoints".
        img_ids: images to evaluate (all ground-truth images when None).
        max_dets: detections per image for bbox/segm; the thresholds become [1, 10, max_dets].
            Keypoints keep COCO's 20.
        kpt_oks_sigmas: per-keypoint OKS sigmas (length K), required for keypoints.

    Returns:
        The evaluator with ``.eval["precision"]`` of shape [T, R, K, A, M] filled.
    """
    quiet = contextlib.redirect_stdout(io.StringIO())
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.cocoeval import COCOeval
    with quiet:
        coco_dt = coco_gt.loadRes(results)
        kwargs = {"print_function": _silent} if backend == "faster_coco_eval" else {}
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type, **kwargs)
        if iou_type == "keypoints":
            coco_eval.params.kpt_oks_sigmas = np.asarray(kpt_oks_sigmas, dtype=np.float64)
        else:
            coco_eval.params.maxDets = [1, 10, max_dets]
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval
