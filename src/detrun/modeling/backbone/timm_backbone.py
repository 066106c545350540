"""Any `timm <https://github.com/huggingface/pytorch-image-models>`_ model as a detection backbone.

`TimmBackbone` wraps ``timm.create_model(name, features_only=True)`` and names its outputs by
stride like detrun's ResNet (``res2`` for stride 4 ... ``res5`` for stride 32), with the channels
and strides timm's ``feature_info`` declares, so an FPN and the heads take it unchanged:
``model/backbone=timm:convnext_tiny`` on the command line.

timm is an optional extra: ``pip install 'detrun[timm]'``. Weights come from files only
(``pretrained_file=``, or ``model.weights=`` for the whole detector), read by detrun's safe
reader; nothing is downloaded.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from detrun.checkpoint.converters import Converter, register_converter
from detrun.checkpoint.model_layout import ModelLayout
from detrun.errors import UserError

from ..shape_spec import ShapeSpec
from .backbone import Backbone

# The attribute holding the timm module: state-dict keys ``...timm_model.stages_0...`` tell the
# checkpoint converter where a timm model sits in a detector.
TIMM_ATTR = "timm_model"


class MissingExtraError(UserError, ImportError):
    """An optional dependency isn't installed; the message names the extra that installs it."""


def import_timm():
    """The timm module, or MissingExtraError saying how to install it."""
    try:
        import timm
    except ImportError as exc:
        raise MissingExtraError("timm backbones need the timm package: pip install 'detrun[timm]' "
                                f"(or pip install timm); importing it failed: {exc}") from None
    return timm


class TimmBackbone(Backbone):
    """A timm model's feature maps as ``{"res{k}": Tensor[N, C_k, H / 2**k, W / 2**k]}``.

    Args:
        model_name: a timm model name (``"convnext_tiny"``, ``"resnet50"``, ``"efficientnet_b0"``...).
        out_features: which outputs to return, by stride name (``["res3", "res4", "res5"]``);
            None: every feature of stride 4 or more.
        pretrained_file: a timm checkpoint (the state dict of ``timm.create_model(model_name)``,
            e.g. from ``torch.save(model.state_dict(), path)``), loaded with detrun's safe reader
            and reported like ``model.weights``; None: random initialisation.
        freeze_at: 0 trains everything; k >= 1 freezes every layer up to the one producing
            ``res{k}`` (k = 1: the stem before the first output); like ResNet's `freeze_at`.
            Frozen BatchNorms become frozen (statistics fixed).
        frozen_norm: freeze every BatchNorm (statistics and affine), as Detectron2's "FrozenBN"
            for backbones fine-tuned with small batches.
        in_channels: image channels.
        model_args: further keyword arguments of ``timm.create_model`` (``drop_path_rate=0.1``).
    """

    def __init__(self, *, model_name: str, out_features: Sequence[str] | None = None,
                 pretrained_file: str | None = None, freeze_at: int = 0, frozen_norm: bool = False,
                 in_channels: int = 3, model_args: dict | None = None):
        super().__init__()
        timm = import_timm()
        try:
            model = timm.create_model(model_name, pretrained=False, features_only=True, in_chans=in_channels,
                                      **dict(model_args or {}))
        except RuntimeError as exc:
            if "Unknown model" not in str(exc):
                raise
            close = timm.list_models(f"*{model_name.split('_')[0]}*")[:8]
            raise ValueError(f"timm has no model '{model_name}'" + (f"; similar: {', '.join(close)}" if close else "")
                             ) from None
        info = model.feature_info
        shapes = {}
        self._module_of = {}
        for channels, reduction, module in zip(info.channels(), info.reduction(), info.module_name()):
            name = f"res{int(math.log2(reduction))}"
            shapes[name] = ShapeSpec(channels=int(channels), stride=int(reduction))
            self._module_of[name] = module
        self._all_outputs = list(shapes)
        if out_features is None:
            out_features = [n for n in shapes if shapes[n].stride >= 4]
        unknown = [f for f in out_features if f not in shapes]
        if unknown or not out_features:
            raise ValueError(f"TimmBackbone({model_name}) out_features {list(out_features)}: it outputs "
                             f"{', '.join(f'{n} (stride {s.stride})' for n, s in shapes.items())}")
        self.model_name = model_name
        self._out_features = list(out_features)
        self._shapes = {n: shapes[n] for n in self._out_features}
        self.timm_model = timm.layers.freeze_batch_norm_2d(model) if frozen_norm else model  # = TIMM_ATTR
        self.freeze(freeze_at)
        if pretrained_file:
            from detrun.checkpoint import load_weights  # the checkpoint package imports modeling lazily

            load_weights(self, pretrained_file)

    def freeze(self, freeze_at: int = 0) -> TimmBackbone:
        """Freeze the layers up to the one producing ``res{freeze_at}`` (see the class docstring)."""
        if freeze_at <= 0:
            return self
        timm = import_timm()
        model = self.timm_model
        children = [name for name, _ in model.named_children()]
        flat = {self._module_of[n].replace(".", "_"): n for n in self._all_outputs}
        feature_children = [i for i, c in enumerate(children) if c in flat]
        last = -1
        for i in feature_children:
            if int(flat[children[i]][3:]) <= freeze_at:
                last = i
        if last < 0:  # no output of that stride: the layers before the first output (the stem)
            last = (feature_children[0] if feature_children else len(children)) - 1
        for name in children[: last + 1]:
            child = getattr(model, name)
            for p in child.parameters():
                p.requires_grad_(False)
            setattr(model, name, timm.layers.freeze_batch_norm_2d(child))
        return self

    @property
    def size_divisibility(self) -> int:
        return max(s.stride for s in self._shapes.values())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W] -> {name: Tensor[N, channels, H / stride, W / stride]} for out_features."""
        features = self.timm_model(x)
        return {name: f for name, f in zip(self._all_outputs, features) if name in self._shapes}

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(self._shapes)


# ---- checkpoints: a timm model's own state dict into the wrapped (features_only) module ----

def timm_prefix(layout: ModelLayout) -> str | None:
    """Prefix of the model's timm module (``"backbone.bottom_up.timm_model."``), or None."""
    for key in layout.keys:
        i = key.find(TIMM_ATTR + ".")
        if i == 0 or (i > 0 and key[i - 1] == "."):
            return key[: i + len(TIMM_ATTR) + 1]
    return None


def _timm_key_candidates(key: str) -> list[str]:
    # features_only flattens the model's top-level Sequentials: "stages.0.x" -> "stages_0.x";
    # FeatureGetterNet keeps the whole model under "model.".
    return [key, re.sub(r"^([^.]+)\.([^.]+)\.", r"\1_\2.", key, count=1), f"model.{key}"]


def _map_timm_keys(weights: dict, layout: ModelLayout) -> tuple[str, dict[str, str]]:
    prefix = timm_prefix(layout)
    model_keys = set(layout.keys)
    mapping = {}
    for key in weights:
        for candidate in _timm_key_candidates(key):
            if prefix + candidate in model_keys:
                mapping[key] = prefix + candidate
                break
    return prefix, mapping


def _recognise_timm(weights: dict, layout: ModelLayout, obj) -> bool:
    if timm_prefix(layout) is None or any(k.startswith(TIMM_ATTR + ".") or f".{TIMM_ATTR}." in k for k in weights):
        return False  # no timm module, or a detrun/Detectron2-named file of the whole model
    _, mapping = _map_timm_keys(weights, layout)
    return len(mapping) >= max(1, len(weights) // 2)


def convert_timm(weights: dict, layout: ModelLayout):
    """timm names -> the model's timm module. Returns (state_dict, ignored, unknown): file keys of
    layers that features_only dropped (classifier, final norm) are ignored."""
    prefix, mapping = _map_timm_keys(weights, layout)
    present = {k[len(prefix):].split(".")[0] for k in layout.keys if k.startswith(prefix)}
    converted, ignored, unknown = {}, [], []
    for key, value in weights.items():
        if key in mapping:
            converted[mapping[key]] = value
        elif not any(c.split(".")[0] in present for c in _timm_key_candidates(key)):
            ignored.append(key)
        else:
            unknown.append(key)
    return converted, ignored, unknown


register_converter(Converter(
    name="timm model",
    recognise=_recognise_timm,
    convert=convert_timm,
    priority=45,
    trunk=timm_prefix,
    describe=lambda obj, path, container: f"timm model {Path(str(path)).name}{container}",
))
