"""The evaluation team's command-line tasks, ``fn(cfg, run_dir)`` each:

- ``task=eval``:      score ``model.weights`` on ``dataloader.test`` with ``evaluator``, or a saved
                      predictions file (``predictions=PATH``) without running a model;
- ``task=predict``:   draw predictions on ``input=IMAGE_OR_FOLDER`` into ``output=DIR``;
- ``task=show_data``: draw a data set's ground truth (``dataset=NAME``, default the train set).
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from detrun.config import instantiate
from detrun.data import DatasetCatalog, read_image
from detrun.engine.launch import launch
from detrun.errors import UserError
from detrun.export.compile import build_model
from detrun.utils import comm
from detrun.utils.visualize import draw_record, image_grid

from .coco_results import instances_to_coco_results
from .evaluators import DatasetEvaluators, build_evaluator, evaluator_dataset_name
from .inference import inference_amp, inference_on_dataset
from .json_files import to_json
from .pictures import SCORE_THRESHOLD, draw_outputs, drawing_style
from .predictor import Predictor
from .saved_predictions import score_predictions
from .tables import per_category_table, summary_table
from .trained_weights import check_trained_predictors

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SHOW_DATA_IMAGES = 8


def _warn_without_weights(cfg: DictConfig) -> None:
    if not OmegaConf.select(cfg, "model.weights"):
        logger.warning("model.weights is not set: running a randomly initialised model "
                       "(pass model.weights=PATH, e.g. a run's model_final.pth)")


def run_eval(cfg: DictConfig, run_dir: Path) -> None:
    """Evaluate: print the AP tables and write ``run_dir/results.json`` (and
    ``run_dir/inference/``: predictions JSON, per-category table).

    Runs on ``trainer.gpus`` GPUs or ``trainer.num_processes`` CPU processes like training,
    each rank scoring its shard of the test set, in precision ``trainer.inference_amp``.
    """
    if OmegaConf.select(cfg, "evaluator") is None:
        raise UserError("task=eval needs an 'evaluator' in the recipe (e.g. from recipes/common/evaluation.py)")
    if OmegaConf.select(cfg, "predictions"):
        _eval_saved_predictions(cfg, Path(run_dir))
        return
    if OmegaConf.select(cfg, "dataloader.test") is None:
        raise UserError("task=eval needs 'dataloader.test' in the recipe")
    inference_amp(cfg)  # a bad value fails here, before any process starts
    _warn_without_weights(cfg)
    launch(_eval_worker, cfg, Path(run_dir))


def _eval_worker(cfg: DictConfig, run_dir: Path, device: torch.device) -> None:
    model = build_model(cfg).to(device)  # compiled with trainer.inference_compile=true
    check_trained_predictors(model, cfg, "eval")
    loader = instantiate(cfg.dataloader.test)  # first: building a data set may (re)register its name
    evaluator = build_evaluator(cfg.evaluator, output_dir=str(run_dir / "inference"))
    results = inference_on_dataset(model, loader, evaluator, amp=inference_amp(cfg))
    if comm.is_main_process():
        _report(results, run_dir)


def _report(results: dict, run_dir: Path) -> None:
    (run_dir / "results.json").write_text(to_json(results, indent=1))
    print(summary_table(results))
    print()
    print(per_category_table(results))
    print(f"\nresults: {run_dir / 'results.json'}")


def _eval_saved_predictions(cfg: DictConfig, run_dir: Path) -> None:
    """``task=eval predictions=PATH``: the recipe's instance evaluators score the file on their data
    set (``evaluator.dataset_name``) in this process; semantic / panoptic evaluators are skipped."""
    if OmegaConf.select(cfg, "dataloader.test") is not None:
        instantiate(cfg.dataloader.test.dataset)  # (re)registers generated sets such as shapes_val
    evaluator = build_evaluator(cfg.evaluator, output_dir=str(run_dir / "inference"))
    evaluators = evaluator.evaluators if isinstance(evaluator, DatasetEvaluators) else [evaluator]
    scoring = [e for e in evaluators if getattr(e, "output_key", "instances") == "instances"]
    for skipped in set(evaluators) - set(scoring):
        logger.warning("predictions=%s holds instances: %s (scores %r) is skipped", cfg.predictions,
                       type(skipped).__name__, skipped.output_key)
    if not scoring:
        raise UserError("predictions=PATH scores instance predictions, but the recipe's evaluators score "
                        f"{', '.join(repr(e.output_key) for e in evaluators)} only")
    dataset_name = evaluator_dataset_name(cfg)
    if dataset_name is None:
        raise UserError("task=eval predictions=PATH needs evaluator.dataset_name=NAME (the data set to score on)")
    score_predictions(cfg.predictions, scoring, dataset_name)
    _report(DatasetEvaluators(scoring).evaluate(), run_dir)


def _input_images(path_value: str | None) -> list[Path]:
    if not path_value:
        raise UserError("task=predict needs input=IMAGE_OR_FOLDER")
    path = Path(path_value).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"input={path_value}: no such file or folder")
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UserError(f"input={path_value}: the folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def _picture_paths(images: list[Path], out_dir: Path) -> list[Path]:
    """Where the picture of each input goes: ``<stem>.png``, else ``<name>.png`` (a.jpg next to
    a.png), else ``<name>.<k>.png``; never one path twice and never an input's own path, so
    predicting into the input folder leaves every input as it was."""
    inputs = {p.resolve() for p in images}
    taken, paths = set(), []
    for path in images:
        names = itertools.chain([f"{path.stem}.png", f"{path.name}.png"],
                                (f"{path.name}.{k}.png" for k in itertools.count(2)))
        out = next(out_dir / n for n in names if n not in taken and (out_dir / n).resolve() not in inputs)
        taken.add(out.name)
        paths.append(out)
    return paths


def run_predict(cfg: DictConfig, run_dir: Path) -> None:
    """Predict on ``cfg.input`` (an image or a folder of images) with the recipe's test transforms.

    Writes one PNG per image (detections scoring >= ``score_threshold``, default 0.5, drawn;
    set it with ``+score_threshold=0.3``) and ``predictions.json`` (all detections: file_name,
    category_id (contiguous) and category_name, bbox XYWH, score, RLE segmentation, keypoints)
    into ``cfg.output`` (default `run_dir`). Runs a `Predictor` (precision ``trainer.inference_amp``).
    """
    images = _input_images(OmegaConf.select(cfg, "input"))
    out_dir = Path(OmegaConf.select(cfg, "output") or run_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    _warn_without_weights(cfg)
    predictor = Predictor(cfg)
    style = drawing_style(evaluator_dataset_name(cfg))
    names = style.get("class_names")
    threshold = float(OmegaConf.select(cfg, "score_threshold", default=SCORE_THRESHOLD))
    predictions = []
    for path, out_file in zip(images, _picture_paths(images, out_dir)):
        output = predictor(path)
        draw_outputs([{"file_name": str(path), "image_id": path.name}], [output], style, threshold)[0].save(out_file)
        if "instances" not in output:  # a semantic model: the picture is its prediction
            logger.info("%s: semantic segmentation -> %s", path, out_file)
            continue
        instances = output["instances"]
        for result in instances_to_coco_results(instances, path.name):
            category = result["category_id"]
            result.update(file_name=str(path), category_name=names[category] if names else str(category))
            predictions.append(result)
        logger.info("%s: %d detections (%d >= %.2f) -> %s", path, len(instances),
                    int((instances.scores >= threshold).sum()), threshold, out_file)
    (out_dir / "predictions.json").write_text(to_json(predictions))
    print(f"{len(images)} pictures and predictions.json written to {out_dir}")


def run_show_data(cfg: DictConfig, run_dir: Path) -> None:
    """Draw the ground truth of the first images of ``cfg.dataset`` (default: the recipe's
    training set, built as the recipe builds it) into ``run_dir/show_data/``: one PNG per
    image and ``grid.png``. ``+num_images=N`` changes how many (default 8)."""
    name = OmegaConf.select(cfg, "dataset")
    if name:
        records = DatasetCatalog.get(name)  # an unknown name is a UserError listing the registered ones
    else:
        node = OmegaConf.select(cfg, "dataloader.train.dataset")
        if node is None:
            raise UserError("task=show_data needs dataset=NAME (the recipe has no dataloader.train.dataset)")
        records = instantiate(node)
        name = OmegaConf.select(node, "name") or OmegaConf.select(node, "names")
        name = name if isinstance(name, str) else (list(name)[0] if name else None)
    count = int(OmegaConf.select(cfg, "num_images", default=SHOW_DATA_IMAGES))
    style = drawing_style(name)
    out_dir = Path(run_dir) / "show_data"
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = []
    for record in records[:count]:
        picture = draw_record(read_image(record["file_name"], "RGB", image_id=record.get("image_id")), record, **style)
        picture.save(out_dir / f"{Path(record['file_name']).stem}.png")
        pictures.append(picture)
    if not pictures:
        raise UserError(f"data set {name!r} has no images to show")
    image_grid(pictures).save(out_dir / "grid.png")
    print(f"{len(pictures)} images of {name} with their annotations written to {out_dir}")
