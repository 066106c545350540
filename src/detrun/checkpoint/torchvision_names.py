"""torchvision parameter names -> detrun (= Detectron2) names, and its class layout -> ours.

torchvision's detection heads put background at class index 0 and regress a box for it;
detrun (like Detectron2) has class logits [C foreground..., background] and C class-specific
boxes. So `cls_score` rows move background from first to last and the background rows of
`bbox_pred` and of the mask predictor are dropped.
"""
from __future__ import annotations

import re

import torch

from .converters import Converter, register_converter
from .model_layout import ModelLayout, rename_into_trunk

_RESNET_RULES = [
    (re.compile(r"^conv1\.weight$"), lambda m: "stem.conv1.weight"),
    (re.compile(r"^bn1\.(\w+)$"), lambda m: f"stem.conv1.norm.{m[1]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.conv(\d)\.weight$"), lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.weight"),
    (re.compile(r"^layer(\d)\.(\d+)\.bn(\d)\.(\w+)$"), lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm.{m[4]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.0\.weight$"), lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.weight"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.1\.(\w+)$"),
     lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.norm.{m[3]}"),
]
# The ImageNet classifier has no counterpart in a detection backbone.
_RESNET_IGNORED = re.compile(r"^fc\.")


def resnet_key(key: str) -> str | None:
    """torchvision ResNet name (``layer1.0.bn2.weight``) -> detrun name (``res2.0.conv2.norm.weight``),
    or None if it isn't a ResNet trunk parameter."""
    for pattern, rename in _RESNET_RULES:
        match = pattern.match(key)
        if match:
            return rename(match)
    return None


def convert_torchvision_resnet(weights: dict[str, torch.Tensor], layout: ModelLayout):
    """An ImageNet ResNet state dict (torchvision.models.resnet*) -> detrun names under the model's trunk.

    Returns (state_dict, ignored keys, unknown keys).
    """
    return rename_into_trunk(weights, layout, "a torchvision ImageNet ResNet", resnet_key, _RESNET_IGNORED)


def convert_torchvision_detection(weights: dict[str, torch.Tensor], layout: ModelLayout):
    """A torchvision Faster/Mask/Keypoint R-CNN or RetinaNet state dict (``*rcnn_resnet50_fpn``,
    ``retinanet_resnet50_fpn``) -> detrun names and class layout.

    Handles both torchvision's current names (``rpn.head.conv.0.0``, ``mask_head.0.0``) and
    the older ones (``rpn.head.conv``, ``mask_head.mask_fcn1``). RetinaNet's head towers
    (``head.classification_head.conv.{i}.0`` conv, ``.1`` norm if any) become Detectron2's
    ``head.cls_subnet.{j}`` Sequential indices. Returns (state_dict, ignored, unknown).
    """
    trunk = layout.require_trunk("a torchvision detection model")
    fpn_first = layout.fpn_first_level()
    rpn = layout.prefix_of("objectness_logits.weight", default="proposal_generator.rpn_head.")
    head = layout.prefix_of("cls_score.weight", default="head.")
    # Sequential entries per tower layer in detrun: conv, ReLU (+ a norm between them if the file has one).
    tower_step = 3 if any(re.match(r"^head\.\w+_head\.conv\.\d+\.1\.", k) for k in weights) else 2
    towers = {"classification": "cls_subnet", "regression": "bbox_subnet"}
    rules = [
        (r"^backbone\.fpn\.inner_blocks\.(\d+)(?:\.0)?\.(weight|bias)$",
         lambda m: f"backbone.fpn_lateral{int(m[1]) + fpn_first}.{m[2]}"),
        (r"^backbone\.fpn\.layer_blocks\.(\d+)(?:\.0)?\.(weight|bias)$",
         lambda m: f"backbone.fpn_output{int(m[1]) + fpn_first}.{m[2]}"),
        (r"^backbone\.fpn\.extra_blocks\.(p6|p7)\.(weight|bias)$", lambda m: f"backbone.top_block.{m[1]}.{m[2]}"),
        (r"^rpn\.head\.conv(?:\.0\.0)?\.(weight|bias)$", lambda m: f"{rpn}conv.{m[1]}"),
        (r"^rpn\.head\.cls_logits\.(weight|bias)$", lambda m: f"{rpn}objectness_logits.{m[1]}"),
        (r"^rpn\.head\.bbox_pred\.(weight|bias)$", lambda m: f"{rpn}anchor_deltas.{m[1]}"),
        (r"^roi_heads\.box_head\.fc6\.(weight|bias)$", lambda m: f"roi_heads.box_head.fc1.{m[1]}"),
        (r"^roi_heads\.box_head\.fc7\.(weight|bias)$", lambda m: f"roi_heads.box_head.fc2.{m[1]}"),
        (r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)$",
         lambda m: f"roi_heads.box_predictor.{m[1]}.{m[2]}"),
        (r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$",
         lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}"),
        (r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$", lambda m: f"roi_heads.mask_head.mask_fcn{m[1]}.{m[2]}"),
        (r"^roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)$", lambda m: f"roi_heads.mask_head.deconv.{m[1]}"),
        (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)$",
         lambda m: f"roi_heads.mask_head.predictor.{m[1]}"),
        (r"^roi_heads\.keypoint_head\.(\d+)\.(weight|bias)$",
         lambda m: f"roi_heads.keypoint_head.conv_fcn{int(m[1]) // 2 + 1}.{m[2]}"),
        (r"^roi_heads\.keypoint_predictor\.kps_score_lowres\.(weight|bias)$",
         lambda m: f"roi_heads.keypoint_head.score_lowres.{m[1]}"),
        (r"^head\.(classification|regression)_head\.conv\.(\d+)\.([01])\.(\w+)$",
         lambda m: f"{head}{towers[m[1]]}.{tower_step * int(m[2]) + int(m[3])}.{m[4]}"),
        (r"^head\.classification_head\.cls_logits\.(weight|bias)$", lambda m: f"{head}cls_score.{m[1]}"),
        (r"^head\.regression_head\.bbox_reg\.(weight|bias)$", lambda m: f"{head}bbox_pred.{m[1]}"),
    ]
    rules = [(re.compile(p), f) for p, f in rules]
    converted, unknown = {}, []
    for key, value in weights.items():
        if key.startswith("backbone.body.") and resnet_key(key[len("backbone.body."):]) is not None:
            converted[trunk + resnet_key(key[len("backbone.body."):])] = value
            continue
        for pattern, rename in rules:
            match = pattern.match(key)
            if match:
                converted[rename(match)] = _to_detrun_class_layout(rename(match), value)
                break
        else:
            unknown.append(key)
    return converted, [], unknown


def _to_detrun_class_layout(key: str, value: torch.Tensor) -> torch.Tensor:
    if key.startswith("roi_heads.box_predictor.cls_score."):
        # [bg, c1..cC] -> [c1..cC, bg]
        return torch.cat([value[1:], value[:1]])
    if key.startswith("roi_heads.box_predictor.bbox_pred."):
        return value[4:]  # drop the background's 4 deltas
    if key.startswith("roi_heads.mask_head.predictor."):
        return value[1:]  # drop the background mask channel
    return value


register_converter(Converter(
    name="torchvision detection model",
    recognise=lambda weights, layout, obj: any(k.startswith(("backbone.body.", "rpn.head.")) for k in weights),
    convert=convert_torchvision_detection,
    priority=30,
))
register_converter(Converter(
    name="torchvision ImageNet ResNet",
    # timm's ResNets share these names: into a model with a detrun ResNet they load as torchvision's
    # (the timm converter, asked first, takes them for a model with a timm backbone).
    recognise=lambda weights, layout, obj: "conv1.weight" in weights and "layer1.0.conv1.weight" in weights,
    convert=convert_torchvision_resnet,
    priority=20,
))
