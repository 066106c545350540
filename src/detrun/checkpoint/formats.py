"""Recognise what a loaded weight file is and convert it to detrun parameter names.

| source                                   | how it is recognised                                   |
|------------------------------------------|--------------------------------------------------------|
| detrun checkpoint                        | ``{"model": ..., "format": "detrun"}``                 |
| Detectron2 model zoo `.pkl` / `.pth`     | Detectron2 names (``backbone.bottom_up.res2.0...``)    |
| Caffe2/MSRA ImageNet ResNet `.pkl`       | Caffe2 blob names (``res2_0_branch2a_w``)              |
| torchvision Faster/Mask/Keypoint R-CNN, RetinaNet | ``backbone.body.*``, ``rpn.head.*``                    |
| torchvision ImageNet ResNet              | ``conv1.weight``, ``layer1.0.conv1.weight``            |

Weights may sit at the top level or under ``"model"`` / ``"state_dict"`` (Caffe2 detection
files: ``"blobs"``), as tensors or numpy arrays; a DistributedDataParallel ``module.``
prefix is removed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .detectron2_names import convert_caffe2_backbone, convert_detectron2, is_caffe2_backbone
from .model_layout import ModelLayout
from .reading import CheckpointError
from .torchvision_names import convert_torchvision_detection, convert_torchvision_resnet

_WRAPPER_KEYS = ("model", "state_dict", "blobs")


@dataclass
class ConvertedWeights:
    """A checkpoint in detrun names.

    Attributes:
        state_dict: detrun name -> tensor.
        source: what the file was recognised as (for the load report).
        ignored: file keys deliberately left out (ImageNet classifier, pixel statistics, ...).
        unknown: file keys the converter has no name for (reported as unexpected).
    """

    state_dict: dict[str, torch.Tensor]
    source: str
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def convert_checkpoint(obj: Any, model_keys: Iterable[str], path: str | Path) -> ConvertedWeights:
    """Convert the object read from `path` into detrun names for a model with `model_keys`.

    Raises:
        CheckpointError: the object holds no tensors/arrays, so it isn't a weight file.
    """
    weights, container = _unwrap(obj, path)
    layout = ModelLayout(model_keys, path)
    keys = list(weights)
    suffix = Path(path).suffix
    if isinstance(obj, dict) and obj.get("format") == "detrun":
        # detrun names are Detectron2's, including a bare ResNet's.
        converted, ignored, unknown = convert_detectron2(weights, layout)
        source = "detrun checkpoint"
    elif any(k.startswith(("backbone.body.", "rpn.head.")) for k in keys):
        converted, ignored, unknown = convert_torchvision_detection(weights, layout)
        source = "torchvision detection model"
    elif "conv1.weight" in weights and "layer1.0.conv1.weight" in weights:
        converted, ignored, unknown = convert_torchvision_resnet(weights, layout)
        source = "torchvision ImageNet ResNet"
    elif is_caffe2_backbone(keys):
        converted, ignored, unknown = convert_caffe2_backbone(weights, layout)
        source = "Caffe2/MSRA ImageNet ResNet (Detectron2 ImageNetPretrained)"
    else:
        converted, ignored, unknown = convert_detectron2(weights, layout)
        author = obj.get("__author__") if isinstance(obj, dict) else None
        source = f"Detectron2 {suffix or 'file'}" + (f" ({author})" if author else "") + f" / detrun names{container}"
    return ConvertedWeights(converted, source, ignored, unknown)


def _unwrap(obj: Any, path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The name -> tensor mapping inside `obj` (numpy arrays become tensors), and where it was."""
    container = ""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj, container = obj[key], f" (under '{key}')"
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"weights file '{path}' holds a {type(obj).__name__}, not a dict of named weights")
    weights = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            # Copy: arrays from a pickle may be read-only or non-contiguous views.
            value = torch.from_numpy(np.array(value))
        if isinstance(value, torch.Tensor):
            weights[str(key)] = value
    if not weights:
        raise CheckpointError(
            f"weights file '{path}' holds no tensors or arrays (top-level keys: {sorted(map(str, obj))[:10]}); "
            "it is not a model checkpoint"
        )
    if all(k.startswith("module.") for k in weights):
        weights = {k[len("module."):]: v for k, v in weights.items()}
    return weights, container
