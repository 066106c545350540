"""Refuse to evaluate or predict with predictor layers that were never trained.

Weights for another class count (torchvision's COCO files have 91 classes) load everything but
the predictors, which then keep their random initialisation: the model runs and scores noise.
Training from such weights is fine-tuning (`load_weights` warns); evaluating them is a mistake.
"""
from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from detrun.checkpoint import CheckpointError
from detrun.checkpoint.load import describe_predictors, load_report

# Which recipe key sets the output size of a predictor layer (by the layer's last name).
_COUNT_KEY = {"cls_score": "num_classes", "bbox_pred": "num_classes", "predictor": "num_classes",
              "score_lowres": "num_keypoints"}


class UntrainedPredictorError(CheckpointError):
    """`model.weights` leaves predictor layers at their initialisation; the message names them and the fix."""


def check_trained_predictors(model: nn.Module, cfg: DictConfig, task: str) -> None:
    """Raise UntrainedPredictorError if the weights loaded into `model` (``model.weights``) left
    any predictor layer at its initialisation, naming the layers and, when the file's shapes
    tell, the override that builds the model the file was trained as (``model.roi_heads.num_classes=90``).
    A model built without weights passes (the task warns about that itself)."""
    report = load_report(model)
    layers = report.untrained_predictors() if report is not None else {}
    if not layers:
        return
    fix = _suggested_override(layers, cfg)
    if fix is None and all(file_shape is None for file_shape, _ in layers.values()):
        fix = "give weights of a trained detector for this recipe (this file only initialises some parts)"
    raise UntrainedPredictorError(
        f"task={task} refuses weights file '{report.path}' ({report.source}): it leaves predictor layers at their "
        f"random initialisation, so the model would predict noise: {describe_predictors(layers)}. "
        + (f"Fix: {fix}." if fix else "Give weights trained for this recipe's model."))


def _suggested_override(layers: dict[str, tuple[tuple | None, tuple]], cfg: DictConfig) -> str | None:
    """``key=value`` that sizes the first mismatched predictor like the file's, if derivable.

    A layer's outputs are ``count + 1`` (Fast R-CNN's classes and background) or ``k * count``
    (k anchors or box coordinates per class); which one is read off the model's own sizes."""
    # Class logits first: their size says the class count most directly.
    for layer, (file_shape, model_shape) in sorted(layers.items(), key=lambda kv: not kv[0].endswith("cls_score")):
        name = _COUNT_KEY.get(layer.rpartition(".")[2])
        key = _count_key(cfg, layer, name) if name and file_shape is not None else None
        if key is None:
            continue
        count, file_out, model_out = int(OmegaConf.select(cfg, key)), file_shape[0], model_shape[0]
        if model_out == count + 1:
            return f"{key}={file_out - 1}"
        if count > 0 and model_out % count == 0 and file_out % (model_out // count) == 0:
            return f"{key}={file_out // (model_out // count)}"
    return None


def _count_key(cfg: DictConfig, layer: str, name: str) -> str | None:
    """The recipe key named `name` (holding a number, not an interpolation) closest to the model
    part `layer`: the one sharing the longest dotted prefix with ``model.<layer>``."""
    target = f"model.{layer}".split(".")
    best, best_shared = None, -1
    for key in _literal_keys(cfg.get("model"), "model", name):
        parts = key.split(".")
        shared = next((i for i, (a, b) in enumerate(zip(parts, target)) if a != b), min(len(parts), len(target)))
        if shared > best_shared:
            best, best_shared = key, shared
    return best


def _literal_keys(node, prefix: str, name: str) -> list[str]:
    """Dotted paths of every `name` key under `node` whose value is written out (not ``${...}``)."""
    keys = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}.{key}"
            if key == name:
                written = not OmegaConf.is_interpolation(node, key) and not OmegaConf.is_missing(node, key)
                if written and isinstance(node.get(key), int):
                    keys.append(path)
            else:
                keys.extend(_literal_keys(node._get_node(key), path, name))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            keys.extend(_literal_keys(node._get_node(i), f"{prefix}.{i}", name))
    return keys
