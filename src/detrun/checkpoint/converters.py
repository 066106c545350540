"""The registry of checkpoint formats: how each family's files are recognised and converted.

A backbone family registers its formats next to its model code (ResNet's Caffe2 and torchvision
names in `detectron2_names` / `torchvision_names`, ViT's MAE/timm names in
`detrun.modeling.backbone.vit_weights`, timm models in `detrun.modeling.backbone.timm_backbone`):

    register_converter(Converter(
        name="MAE / timm ViT",
        recognise=lambda weights, layout: "blocks.0.attn.qkv.weight" in weights and layout.prefix_of(...),
        convert=convert_mae_vit,      # (weights, layout) -> (state_dict, ignored keys, unknown keys)
        priority=40,
    ))

`convert_checkpoint` asks the converters from the highest priority down and uses the first that
recognises the file; the Detectron2/detrun names converter (priority -100) takes anything left.
Shape adapters then fit tensors a family knows how to resize (position embeddings of another
grid) to the model's shapes.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .model_layout import ModelLayout

# (state_dict, ignored file keys, unknown file keys)
Converted = tuple[dict[str, torch.Tensor], list[str], list[str]]


@dataclass(frozen=True)
class Converter:
    """One checkpoint format.

    Attributes:
        name: what a file of this format is, for the load report ("torchvision ImageNet ResNet").
        recognise: (file weights, model layout, the whole object read from the file) -> True if
            this converter handles the file. The weights are already unwrapped (``"model"``,
            ``"state_dict"``...) and without a DDP ``module.`` prefix.
        convert: (file weights, model layout) -> (detrun state dict, ignored keys, unknown keys).
        priority: converters are asked from the highest down.
        trunk: model layout -> prefix of the backbone part whose tensors must all fit exactly when
            the file has any for it (a ResNet of another depth is an error, not a partial load);
            None: the model's ResNet, if it has one.
        may_miss: model keys under the trunk the file needn't have (e.g. ViTDet's relative
            position embeddings, which MAE pretraining lacks): reported as missing, not an error.
        describe: (object read, path, where the weights were in it) -> the report's source text;
            None: `name`.
    """

    name: str
    recognise: Callable[[dict[str, torch.Tensor], ModelLayout, Any], bool]
    convert: Callable[[dict[str, torch.Tensor], ModelLayout], Converted]
    priority: int = 0
    trunk: Callable[[ModelLayout], str | None] | None = None
    may_miss: re.Pattern | None = None
    describe: Callable[[Any, Any, str], str] | None = None


@dataclass(frozen=True)
class ShapeAdapter:
    """Resizes converted tensors whose keys match `pattern` to the model's shape:
    ``adapt(key, file tensor, model shape) -> tensor of the model shape``, or None if it can't."""

    name: str
    pattern: re.Pattern
    adapt: Callable[[str, torch.Tensor, tuple[int, ...]], torch.Tensor | None]


_CONVERTERS: dict[str, Converter] = {}
_ADAPTERS: dict[str, ShapeAdapter] = {}
# Modules whose import registers converters of model families that live outside this package.
FAMILY_MODULES = ("detrun.modeling.backbone.vit_weights", "detrun.modeling.backbone.timm_backbone")


def register_converter(converter: Converter) -> Converter:
    """Add `converter` (replacing one of the same name: re-importing a module is harmless)."""
    _CONVERTERS[converter.name] = converter
    return converter


def register_shape_adapter(adapter: ShapeAdapter) -> ShapeAdapter:
    """Add `adapter` (replacing one of the same name)."""
    _ADAPTERS[adapter.name] = adapter
    return adapter


def _load_families() -> None:
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(module)


def registered_converters() -> list[Converter]:
    """Every registered converter, highest priority first."""
    _load_families()
    return sorted(_CONVERTERS.values(), key=lambda c: -c.priority)


def find_converter(weights: dict[str, torch.Tensor], layout: ModelLayout, obj: Any) -> Converter:
    """The first converter (by priority) that recognises the file."""
    for converter in registered_converters():
        if converter.recognise(weights, layout, obj):
            return converter
    raise LookupError("no checkpoint converter recognised the file")  # the fallback recognises everything


def adapt_shapes(state: dict[str, torch.Tensor], layout: ModelLayout) -> list[str]:
    """Resize, in place, the tensors of `state` that a shape adapter fits to the model's shapes;
    returns the keys it resized."""
    _load_families()
    resized = []
    for key, value in state.items():
        shape = layout.shapes.get(key)
        if shape is None or tuple(value.shape) == tuple(shape):
            continue
        for adapter in _ADAPTERS.values():
            if adapter.pattern.search(key):
                new = adapter.adapt(key, value, tuple(shape))
                if new is not None and tuple(new.shape) == tuple(shape):
                    state[key] = new
                    resized.append(key)
                    break
    return resized
