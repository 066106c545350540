"""`COCOEvaluator`: COCO box / mask / keypoint AP of a registered data set's predictions."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.datasets.coco_person import KEYPOINT_OKS_SIGMAS as COCO_PERSON_SIGMAS
from detrun.errors import UserError
from detrun.utils import comm

from . import coco_backends
from .coco_format import cached_records_to_coco
from .json_files import to_json
from .coco_metrics import empty_metrics, summarize
from .coco_results import RESULT_KEYS, instances_to_coco_results, results_for_task
from .tables import per_category_table, summary_table

logger = logging.getLogger(__name__)

TASKS = tuple(RESULT_KEYS)  # ("bbox", "segm", "keypoints")
PREDICTION_FIELDS = {"segm": "pred_masks", "keypoints": "pred_keypoints"}  # the Instances field each task needs


class COCOEvaluator:
    """COCO AP (percent) of predictions on the data set `dataset_name`, through pycocotools.

    Call ``reset()``, then ``process(inputs, outputs)`` per batch on every rank, then
    ``evaluate()`` on every rank (it gathers); rank 0 returns
    ``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-<class>"...}, "segm": {...},
    "keypoints": {...}}``, the other ranks ``{}``.

    Ground truth is the data set's COCO JSON (metadata ``json_file``) or, for data sets
    registered from a list of dicts, a conversion cached in `output_dir`. Predicted contiguous
    class indices go back to the data set's category ids (metadata
    ``thing_dataset_id_to_contiguous_id``). Only processed images are scored, each once.
    """

    def __init__(
        self,
        dataset_name: str,
        *,
        output_dir: str | None = None,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        backend: str = "auto",
        max_dets_per_image: int = 100,
        kpt_oks_sigmas: Sequence[float] | None = None,
    ):
        """
        Args:
            dataset_name: a registered data set (DatasetCatalog/MetadataCatalog name).
            output_dir: where predictions JSON, per-category table and a converted ground truth
                are written; nothing is written when None.
            tasks: subset of ("bbox", "segm", "keypoints"); inferred from the predictions when None
                (bbox always, segm with ``pred_masks``, keypoints with ``pred_keypoints``, fields a
                model sets even when it detects nothing).
            distributed: gather predictions from all ranks to rank 0 in ``evaluate()``.
            backend: "auto", "pycocotools" or "faster_coco_eval" (see `coco_backends`).
            max_dets_per_image: detections scored per image for bbox/segm (COCO: 100).
            kpt_oks_sigmas: OKS sigma per keypoint; default the metadata's ``keypoint_oks_sigmas``,
                else COCO's 17 person-keypoint sigmas.
        """
        if dataset_name not in DatasetCatalog:
            raise UserError(f"evaluator.dataset_name={dataset_name!r} is not a registered data set (registered: "
                            f"{', '.join(DatasetCatalog.list()) or 'none'}); register it first, e.g. with "
                            "detrun.data.register_coco_instances or DatasetCatalog.register")
        self._metadata = MetadataCatalog.get(dataset_name)
        if tasks is not None:
            unknown = set(tasks) - set(TASKS)
            if unknown or not tasks:
                raise UserError(f"evaluator.tasks={list(tasks)} must be a non-empty subset of {list(TASKS)}")
        self.dataset_name = dataset_name
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._backend = coco_backends.resolve_backend(backend)
        self._max_dets = int(max_dets_per_image)
        self._kpt_oks_sigmas = kpt_oks_sigmas if kpt_oks_sigmas is not None else self._metadata.get("keypoint_oks_sigmas")
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id")
        self._category_ids = None if id_map is None else {int(v): int(k) for k, v in id_map.items()}
        self._coco_gt = None  # built on the first evaluate(), on the main rank only
        self._image_id_map: dict | None = None
        self.reset()

    @property
    def backend(self) -> str:
        """The COCO engine in use: "pycocotools" or "faster_coco_eval"."""
        return self._backend

    def reset(self) -> None:
        """Forget the predictions processed so far."""
        self._predictions: list[dict] = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Convert a batch of predictions to COCO results and keep them (on CPU, masks as RLE).

        Args:
            inputs: the loader's dicts; each needs ``image_id``.
            outputs: the model's ``[{"instances": Instances}]`` for the same images, in original
                image coordinates.
        """
        for inp, out in zip(inputs, outputs, strict=True):
            if "instances" not in out:
                raise ValueError(f"COCOEvaluator needs model outputs with 'instances'; got keys {sorted(out)}")
            instances = out["instances"].to("cpu")
            results = instances_to_coco_results(instances, inp["image_id"], category_ids=self._category_ids)
            # The fields say what the model predicts even on an image where it found nothing.
            tasks = [t for t, field in PREDICTION_FIELDS.items() if instances.has(field)]
            self._predictions.append({"image_id": inp["image_id"], "results": results, "tasks": tasks})

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Gather, score and report; ``{}`` on ranks other than 0. See the class docstring."""
        if self._distributed:
            # Collective: all ranks send their predictions (small: RLEs, not bitmaps).
            gathered = comm.all_gather_object(self._predictions)
            if not comm.is_main_process():
                return {}
            predictions = [p for rank_predictions in gathered for p in rank_predictions]
        else:
            predictions = self._predictions
        # Samplers may pad a shard with repeated images; each image counts once.
        unique: dict = {}
        for p in predictions:
            unique.setdefault(p["image_id"], p)
        predictions = list(unique.values())
        coco_gt = self._ground_truth()
        image_ids = [self._coco_image_id(p["image_id"]) for p in predictions]
        self._check_image_ids(image_ids, coco_gt)
        if self._image_id_map is None:
            results = [r for p in predictions for r in p["results"]]
        else:
            results = [dict(r, image_id=i) for p, i in zip(predictions, image_ids) for r in p["results"]]
        if self._output_dir is not None:
            self._output_dir.mkdir(parents=True, exist_ok=True)
            (self._output_dir / "coco_instances_results.json").write_text(to_json(results, separators=(",", ":")))

        if not results:
            logger.warning("No predictions on %s (%d images): every metric is 0.", self.dataset_name, len(image_ids))
        tasks = self._tasks or tuple(t for t in TASKS if t == "bbox" or any(t in p["tasks"] for p in predictions))
        metrics = {task: self._evaluate_task(coco_gt, results, task, image_ids) for task in tasks}
        logger.info("COCO evaluation of %s (%d images, %s): %s", self.dataset_name, len(image_ids), self._backend,
                    ", ".join(f"{task} AP {m['AP']:.3f}" for task, m in metrics.items()))
        if self._output_dir is not None:
            tables = f"{summary_table(metrics)}\n\n{per_category_table(metrics)}\n"
            (self._output_dir / "per_category_ap.txt").write_text(tables)
        return metrics

    def _evaluate_task(self, coco_gt: Any, results: list[dict], task: str, image_ids: list) -> dict[str, float]:
        class_names = [c["name"] for c in sorted(coco_gt.dataset["categories"], key=lambda c: c["id"])]
        if not results:
            return empty_metrics(task, class_names)
        if RESULT_KEYS[task] not in results[0]:
            raise UserError(f"evaluator.tasks includes {task!r} but the model's predictions have no "
                            f"{PREDICTION_FIELDS[task]}")
        if task == "segm" and not all("segmentation" in a for a in coco_gt.dataset["annotations"]):
            raise UserError(f"segm evaluation on {self.dataset_name!r}, whose ground truth lacks segmentations: "
                            "set evaluator.tasks=[bbox]")
        sigmas = self._keypoint_sigmas(results) if task == "keypoints" else None
        coco_eval = coco_backends.run_cocoeval(
            coco_gt, results_for_task(results, task), task, backend=self._backend, img_ids=image_ids,
            max_dets=self._max_dets, kpt_oks_sigmas=sigmas,
        )
        return summarize(coco_eval, class_names)

    def _keypoint_sigmas(self, results: list[dict]) -> Sequence[float]:
        num_keypoints = len(results[0]["keypoints"]) // 3
        anns = self._coco_gt.dataset["annotations"]
        if not any("num_keypoints" in a for a in anns):
            raise UserError(f"keypoint evaluation on {self.dataset_name!r}, whose ground truth has no keypoints")
        if self._kpt_oks_sigmas is not None:
            if len(self._kpt_oks_sigmas) != num_keypoints:
                raise UserError(f"evaluator.kpt_oks_sigmas has {len(self._kpt_oks_sigmas)} values for "
                                f"{num_keypoints} keypoints")
            return list(self._kpt_oks_sigmas)
        if num_keypoints == len(COCO_PERSON_SIGMAS):
            return COCO_PERSON_SIGMAS
        raise UserError(f"{num_keypoints} keypoints but no OKS sigmas: set evaluator.kpt_oks_sigmas (one per "
                        f"keypoint) or the metadata's keypoint_oks_sigmas of {self.dataset_name!r}")

    def _ground_truth(self) -> Any:
        """The backend's COCO object of the data set (loaded or converted once, then kept)."""
        if self._coco_gt is None:
            json_file = self._metadata.get("json_file")
            if json_file:
                path = Path(json_file)
                if not path.is_file():
                    raise UserError(f"json_file {path} of data set {self.dataset_name!r} does not exist")
                dataset = json.loads(path.read_text())
            else:
                cache = self._output_dir / f"{self.dataset_name}_coco_format.json" if self._output_dir else None
                category_ids = None
                class_names = list(self._metadata.get("thing_classes") or [])
                if not class_names:
                    raise UserError(f"data set {self.dataset_name!r} has no COCO json_file and no thing_classes: set "
                                    f"MetadataCatalog.get({self.dataset_name!r}).thing_classes = [names...]")
                if self._category_ids is not None:
                    category_ids = [self._category_ids[k] for k in range(len(class_names))]
                dataset = cached_records_to_coco(
                    DatasetCatalog.get(self.dataset_name), cache_file=cache, class_names=class_names,
                    category_ids=category_ids, dataset_name=self.dataset_name,
                )
            pairs = dataset.get("info", {}).get("image_id_map")
            self._image_id_map = None if pairs is None else {str(k): v for k, v in pairs}
            self._coco_gt = coco_backends.load_coco(dataset, self._backend)
        return self._coco_gt

    def _coco_image_id(self, image_id: Any) -> Any:
        # an id missing from the map stays as is, and _check_image_ids reports it
        return image_id if self._image_id_map is None else self._image_id_map.get(str(image_id), image_id)

    def _check_image_ids(self, image_ids: list, coco_gt: Any) -> None:
        known = {img["id"] for img in coco_gt.dataset["images"]}
        unknown = [i for i in image_ids if i not in known]
        if unknown:
            raise UserError(f"{len(unknown)} predicted image ids (e.g. {unknown[:3]}) are not images of data set "
                            f"{self.dataset_name!r}: evaluate with the loader of that data set")

