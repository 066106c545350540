"""Checkpoints of the ViT family: MAE / timm ViT state dicts into a detrun `ViT`, and position
embeddings resized to the model's grid on load.

| file                                   | keys                                                     |
|----------------------------------------|----------------------------------------------------------|
| MAE pretraining (``mae_pretrain_vit_base.pth``), timm ``vit_*`` | ``patch_embed.proj.*``, ``pos_embed``, ``blocks.N.attn.qkv.*``, ``cls_token``, ``norm.*`` |
| Detectron2 ViTDet (``model_final_*.pkl``) | detrun's own names (``backbone.net.blocks.N...``, ``backbone.simfp_2.*``) |

An MAE/timm ViT goes under the model's ViT (``backbone.net.``); its class token, final norm,
classifier and MAE decoder have no counterpart in a detection ViT and are ignored. ViTDet's
relative position embeddings are not in MAE/timm files: they keep their (zero) initialisation, as in
Detectron2. Absolute position embeddings of another grid (a 384-px timm ViT, a ViT built for
another ``pretrain_img_size``) are resized bicubically, relative ones linearly, from any source.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from detrun.checkpoint.converters import Converter, ShapeAdapter, register_converter, register_shape_adapter
from detrun.checkpoint.model_layout import ModelLayout

_VIT_KEY = "patch_embed.proj.weight"  # a key every detrun ViT has, under its prefix
_VIT_ROOTS = ("patch_embed.", "pos_embed", "blocks.")
# In MAE/timm files, not in a detection ViT: class token, final norm(s), classifier, MAE decoder.
_VIT_IGNORED = re.compile(r"^(cls_token$|dist_token$|mask_token$|norm\.|fc_norm\.|head\.|head_dist\.|pre_logits\.|"
                          r"decoder_)")
_REL_POS = re.compile(r"\.attn\.rel_pos_[hw]$")


def vit_prefix(layout: ModelLayout) -> str | None:
    """Prefix of the model's detrun ViT (``"backbone.net."``), or None if it has none."""
    return layout.prefix_of(_VIT_KEY)


def is_bare_vit(weights: dict[str, torch.Tensor]) -> bool:
    """True for a ViT state dict in MAE/timm names (blocks at the top level)."""
    return _VIT_KEY in weights and any(k.startswith("blocks.0.attn.qkv.") for k in weights)


def convert_mae_vit(weights: dict[str, torch.Tensor], layout: ModelLayout):
    """MAE / timm ViT names -> the model's ViT. Returns (state_dict, ignored keys, unknown keys)."""
    prefix = vit_prefix(layout)
    converted, ignored, unknown = {}, [], []
    for key, value in weights.items():
        if _VIT_IGNORED.search(key):
            ignored.append(key)
        elif key.startswith(_VIT_ROOTS):
            converted[prefix + key] = value
        else:
            unknown.append(key)
    return converted, ignored, unknown


def resize_abs_pos_embed(key: str, value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """pos_embed Tensor[1, (1 +) G*G, C] -> the model's Tensor[1, (1 +) g*g, C]: the grid resized
    bicubically (as Detectron2's ViT does at every call), the class-token slot kept, dropped or
    added (zeros) as the model has one or not."""
    if value.dim() != 3 or len(shape) != 3 or value.shape[-1] != shape[-1]:
        return None
    file_cls, file_grid = _split_cls(value.shape[1])
    model_cls, model_grid = _split_cls(shape[1])
    if file_grid is None or model_grid is None:
        return None
    grid = value[:, file_cls:].reshape(1, file_grid, file_grid, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(model_grid, model_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, model_grid * model_grid, -1).to(value.dtype)
    if model_cls:
        cls = value[:, :1] if file_cls else value.new_zeros(1, 1, value.shape[-1])
        grid = torch.cat([cls, grid], dim=1)
    return grid


def _split_cls(n: int) -> tuple[int, int | None]:
    """(1 if a class-token slot, grid side) for n positions, or (0, None) if n is no square (+1)."""
    side = math.isqrt(n)
    if side * side == n:
        return 0, side
    side = math.isqrt(n - 1)
    return (1, side) if side * side == n - 1 else (0, None)


def resize_rel_pos(key: str, value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """rel_pos_h / rel_pos_w Tensor[2S - 1, C] -> the model's Tensor[2s - 1, C], linearly
    interpolated (Detectron2's `get_rel_pos` does the same at every call)."""
    if value.dim() != 2 or len(shape) != 2 or value.shape[1] != shape[1]:
        return None
    resized = F.interpolate(value.t()[None].float(), size=shape[0], mode="linear")[0].t()
    return resized.to(value.dtype).contiguous()


register_converter(Converter(
    name="MAE / timm ViT",
    recognise=lambda weights, layout, obj: is_bare_vit(weights) and vit_prefix(layout) is not None,
    convert=convert_mae_vit,
    priority=40,
    trunk=vit_prefix,
    may_miss=_REL_POS,
))
register_shape_adapter(ShapeAdapter("ViT absolute position embeddings", re.compile(r"(^|\.)pos_embed$"),
                                    resize_abs_pos_embed))
register_shape_adapter(ShapeAdapter("ViT relative position embeddings", _REL_POS, resize_rel_pos))
