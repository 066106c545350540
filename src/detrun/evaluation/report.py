"""`write_training_report`: the pictures written at the end of a training run."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from detrun.config import instantiate
from detrun.utils.plots import plot_training_curves
from detrun.utils.visualize import image_grid

from .evaluators import evaluator_dataset_name
from .pictures import draw_outputs, drawing_style

logger = logging.getLogger(__name__)

REPORT_IMAGES = 8


def write_training_report(model: nn.Module, cfg: DictConfig, run_dir: Path) -> None:
    """Write ``training_curves.png`` (losses, lr, AP from ``metrics.jsonl``) and
    ``val_predictions.png`` (the model's detections on the first 8 images of ``dataloader.test``)
    into `run_dir`. Call on rank 0 only; a part without its inputs is skipped with a warning.
    """
    run_dir = Path(run_dir)
    plot_training_curves(run_dir / "metrics.jsonl", run_dir / "training_curves.png")
    if OmegaConf.select(cfg, "dataloader.test") is None:
        logger.warning("No val_predictions.png: the recipe has no dataloader.test")
        return
    style = drawing_style(evaluator_dataset_name(cfg))
    was_training = model.training
    model.eval()
    pictures = []
    try:
        with torch.no_grad():
            for inputs in instantiate(cfg.dataloader.test):
                inputs = inputs[:REPORT_IMAGES - len(pictures)]
                pictures += draw_outputs(inputs, model(inputs), style)
                if len(pictures) >= REPORT_IMAGES:
                    break
    finally:
        model.train(was_training)
    if pictures:
        image_grid(pictures).save(run_dir / "val_predictions.png")
