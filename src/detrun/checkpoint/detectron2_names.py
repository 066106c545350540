"""Detectron2 checkpoints: its own names (= detrun's) and the Caffe2 names of MSRA ImageNet backbones.

Detectron2's ImageNet-pretrained `R-50.pkl` / `R-101.pkl` hold Caffe2 blobs: ``conv1_w``,
``res_conv1_bn_s``, ``res2_0_branch2a_w``, ``res2_0_branch2a_bn_{s,b,rm,riv}``,
``res3_0_branch1_w`` (projection shortcut), ``fc1000_{w,b}`` (ImageNet classifier).
Their batch norms are already folded into a scale ``_s`` and shift ``_b``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .converters import Converter, register_converter
from .model_layout import ModelLayout, rename_into_trunk

_C2_STEM = re.compile(r"^(conv1_|res_conv1_)")
_C2_BLOCK = re.compile(r"^res(\d+)_(\d+)_branch(1|2a|2b|2c)_(.+)$")
_C2_BRANCH = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}
_C2_PARAM = {
    "w": "weight", "b": "bias",
    "bn_s": "norm.weight", "bn_b": "norm.bias", "bn_rm": "norm.running_mean", "bn_riv": "norm.running_var",
    "gn_s": "norm.weight", "gn_b": "norm.bias",
}
_C2_IGNORED = re.compile(r"(^fc1000_|^pred_|_momentum$)")
_C2_SIGNATURE = re.compile(r"^(conv1_w|res_conv1_bn_s|res\d+_\d+_branch\w+)$")

# In Detectron2 files but not weights: the recipe owns pixel statistics, anchors are recomputed.
_D2_IGNORED = re.compile(r"(^pixel_(mean|std)$|\.cell_anchors\.\d+$)")
# First components of a bare Detectron2 ResNet state dict (e.g. converted ImageNet weights).
_D2_TRUNK_ROOTS = ("stem.", "res2.", "res3.", "res4.", "res5.")


def is_caffe2_backbone(keys: list[str]) -> bool:
    """True for Caffe2-named (MSRA ImageNet) ResNet weights."""
    return any(_C2_SIGNATURE.match(k) for k in keys)


def c2_key(key: str) -> str | None:
    """Caffe2 blob name -> detrun ResNet name (``res2_0_branch2a_bn_s`` -> ``res2.0.conv1.norm.weight``)."""
    if _C2_STEM.match(key):
        param = key.split("_", 1)[1] if key.startswith("conv1_") else key[len("res_conv1_"):]
        return f"stem.conv1.{_C2_PARAM[param]}" if param in _C2_PARAM else None
    match = _C2_BLOCK.match(key)
    if match and match[4] in _C2_PARAM:
        return f"res{match[1]}.{match[2]}.{_C2_BRANCH[match[3]]}.{_C2_PARAM[match[4]]}"
    return None


def convert_caffe2_backbone(weights: dict[str, torch.Tensor], layout: ModelLayout):
    """Caffe2 ImageNet ResNet blobs -> detrun names under the model's trunk.

    Returns (state_dict, ignored keys, unknown keys).
    """
    converted, ignored, unknown = rename_into_trunk(weights, layout, "a Caffe2/MSRA ImageNet ResNet", c2_key,
                                                    _C2_IGNORED)
    model_keys = set(layout.keys)
    for key in [k for k in converted if k.endswith(".norm.weight")]:
        # Folded BN: identity statistics make the frozen norm compute x * s + b (as Detectron2 does).
        module = key[: -len("weight")]
        value = converted[key]
        if module + "running_mean" in model_keys and module + "running_mean" not in converted:
            converted[module + "running_mean"] = torch.zeros_like(value)
            converted[module + "running_var"] = torch.ones_like(value)
    return converted, ignored, unknown


def convert_detectron2(weights: dict[str, torch.Tensor], layout: ModelLayout):
    """Detectron2-named weights: used as they are (detrun shares the names), except that a bare
    ResNet (``stem.*``, ``res2.*``...) is placed under the model's trunk and non-weights are ignored.

    Returns (state_dict, ignored keys, unknown keys).
    """
    bare_trunk = all(k.startswith(_D2_TRUNK_ROOTS) for k in weights if not _D2_IGNORED.search(k))
    prefix = layout.require_trunk("a bare Detectron2 ResNet") if bare_trunk and weights else ""
    converted, ignored = {}, []
    for key, value in weights.items():
        if _D2_IGNORED.search(key):
            ignored.append(key)
        else:
            converted[prefix + key] = value
    return converted, ignored, []


def _describe_detectron2(obj, path, container: str) -> str:
    suffix = Path(path).suffix
    author = obj.get("__author__") if isinstance(obj, dict) else None
    return f"Detectron2 {suffix or 'file'}" + (f" ({author})" if author else "") + f" / detrun names{container}"


register_converter(Converter(
    name="detrun checkpoint",
    # detrun names are Detectron2's, including a bare ResNet's.
    recognise=lambda weights, layout, obj: isinstance(obj, dict) and obj.get("format") == "detrun",
    convert=convert_detectron2,
    priority=100,
))
register_converter(Converter(
    name="Caffe2/MSRA ImageNet ResNet (Detectron2 ImageNetPretrained)",
    recognise=lambda weights, layout, obj: is_caffe2_backbone(list(weights)),
    convert=convert_caffe2_backbone,
    priority=10,
))
# Anything no family recognised: Detectron2's names, which are detrun's.
register_converter(Converter(
    name="Detectron2 / detrun names",
    recognise=lambda weights, layout, obj: True,
    convert=convert_detectron2,
    priority=-100,
    describe=_describe_detectron2,
))
