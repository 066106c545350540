"""Recognise what a loaded weight file is and convert it to detrun parameter names.

| source                                   | how it is recognised                                   |
|------------------------------------------|--------------------------------------------------------|
| detrun checkpoint                        | ``{"model": ..., "format": "detrun"}``                 |
| Detectron2 model zoo `.pkl` / `.pth`     | Detectron2 names (``backbone.bottom_up.res2.0...``)    |
| Caffe2/MSRA ImageNet ResNet `.pkl`       | Caffe2 blob names (``res2_0_branch2a_w``)              |
| torchvision Faster/Mask/Keypoint R-CNN, RetinaNet | ``backbone.body.*``, ``rpn.head.*``                    |
| torchvision ImageNet ResNet              | ``conv1.weight``, ``layer1.0.conv1.weight``            |
| MAE / timm ViT (into a detrun ViT)       | ``blocks.0.attn.qkv.weight``, ``patch_embed.proj.*``   |
| timm model (into a `TimmBackbone`)       | its keys fit the model's timm module                   |

Each row is a `Converter` registered by its family (`detrun.checkpoint.converters`); position
embeddings of another grid are resized to the model's on load.

Weights may sit at the top level or under ``"model"`` / ``"state_dict"`` (Caffe2 detection
files: ``"blobs"``), as tensors or numpy arrays; a DistributedDataParallel ``module.``
prefix is removed.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import detectron2_names, torchvision_names  # noqa: F401 (they register their converters)
from .converters import adapt_shapes, find_converter
from .model_layout import ModelLayout
from .reading import CheckpointError

_WRAPPER_KEYS = ("model", "state_dict", "blobs")


@dataclass
class ConvertedWeights:
    """A checkpoint in detrun names.

    Attributes:
        state_dict: detrun name -> tensor.
        source: what the file was recognised as (for the load report).
        ignored: file keys deliberately left out (ImageNet classifier, pixel statistics, ...).
        unknown: file keys the converter has no name for (reported as unexpected).
        trunk: prefix of the backbone part that must fit exactly (None: none).
        may_miss: model keys under `trunk` the file needn't have.
        resized: keys whose tensors were resized to the model's shape (position embeddings).
    """

    state_dict: dict[str, torch.Tensor]
    source: str
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    trunk: str | None = None
    may_miss: re.Pattern | None = None
    resized: list[str] = field(default_factory=list)


def convert_checkpoint(obj: Any, model_keys: Iterable[str], path: str | Path,
                       model_shapes: dict[str, tuple] | None = None) -> ConvertedWeights:
    """Convert the object read from `path` into detrun names for a model with `model_keys`
    (and tensor shapes `model_shapes`, which let position embeddings be resized on load).

    The registered converters (`detrun.checkpoint.converters`) are asked in priority order; the
    first that recognises the file converts it.

    Raises:
        CheckpointError: the object holds no tensors/arrays, so it isn't a weight file.
    """
    weights, container = _unwrap(obj, path)
    layout = ModelLayout(model_keys, path, model_shapes)
    converter = find_converter(weights, layout, obj)
    converted, ignored, unknown = converter.convert(weights, layout)
    source = converter.describe(obj, path, container) if converter.describe else converter.name
    trunk = converter.trunk(layout) if converter.trunk else layout.trunk
    resized = adapt_shapes(converted, layout)
    return ConvertedWeights(converted, source, ignored, unknown, trunk, converter.may_miss, resized)


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
