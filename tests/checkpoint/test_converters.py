"""The converter registry: each family recognises and converts its own checkpoints (MAE / timm ViT,
Detectron2 ViTDet, timm models), position embeddings are resized on load, and a new format is one
registration. The state dicts are written here, with those libraries' names."""
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detrun.checkpoint import CheckpointError, load_weights
from detrun.checkpoint import converters as registry
from detrun.checkpoint.converters import Converter, registered_converters
from detrun.config import compose, instantiate
from detrun.modeling import LastLevelMaxPool, SimpleFeaturePyramid, ViT


def vitdet(depth: int = 4, img_size: int = 64, pretrain_img_size: int = 64, dim: int = 32) -> nn.Module:
    """A small ViTDet backbone under ``backbone.`` (the model layout of a detector)."""
    net = ViT(img_size=img_size, patch_size=16, embed_dim=dim, depth=depth, num_heads=2, window_size=2,
              window_block_indexes=[0], pretrain_img_size=pretrain_img_size)
    return nn.ModuleDict({"backbone": SimpleFeaturePyramid(net=net, out_channels=8, top_block=LastLevelMaxPool())})


def mae_state_dict(net: ViT, grid: int) -> dict[str, torch.Tensor]:
    """An MAE / timm ViT state dict for `net`'s blocks: its names without ``net.``, no relative
    position tables, a class token, a final norm, a (1, 1 + grid², C) pos_embed, random values."""
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in net.state_dict().items() if "rel_pos" not in k}
    dim = net.pos_embed.shape[-1]
    state["pos_embed"] = torch.randn(1, 1 + grid * grid, dim, generator=g)
    state.update({"cls_token": torch.randn(1, 1, dim, generator=g), "norm.weight": torch.ones(dim),
                  "norm.bias": torch.zeros(dim)})
    return state


def test_the_families_are_registered_in_priority_order():
    names = [c.name for c in registered_converters()]
    for name in ("detrun checkpoint", "timm model", "MAE / timm ViT", "torchvision detection model",
                 "torchvision ImageNet ResNet", "Caffe2/MSRA ImageNet ResNet (Detectron2 ImageNetPretrained)"):
        assert name in names
    assert names[-1] == "Detectron2 / detrun names"  # takes whatever no family recognised
    assert names.index("timm model") < names.index("torchvision ImageNet ResNet")  # timm ResNets share its names


def test_mae_vit_loads_under_the_vit_with_its_extras_ignored(tmp_path):
    model = vitdet()
    net = model["backbone"].net
    state = mae_state_dict(net, grid=4)
    torch.save({"model": state}, tmp_path / "mae.pth")
    report = load_weights(model, tmp_path / "mae.pth", verbose=False)
    assert report.source == "MAE / timm ViT"
    assert sorted(report.ignored) == ["cls_token", "norm.bias", "norm.weight"] and not report.unexpected
    net_missing = [k for k in report.missing if k.startswith("backbone.net.")]
    assert net_missing and all(re.search(r"\.attn\.rel_pos_[hw]$", k) for k in net_missing)  # ViTDet's own, zero
    for key, value in net.state_dict().items():
        if "rel_pos" not in key:
            torch.testing.assert_close(value, state[key])


def test_an_mae_vit_b_state_dict_fills_every_vitdet_b_backbone_tensor(tmp_path):
    from detrun.recipes.common.models.mask_rcnn_vitdet import model as node

    model = nn.ModuleDict({"backbone": instantiate(node.backbone)})
    net = model["backbone"].net
    # MAE's mae_pretrain_vit_base.pth names and shapes; one stored number per tensor keeps the file small.
    state = {k: torch.zeros(1).expand(v.shape) for k, v in net.state_dict().items() if "rel_pos" not in k}
    state.update({"cls_token": torch.zeros(1, 1, 768), "norm.weight": torch.ones(768), "norm.bias": torch.zeros(768)})
    assert state["pos_embed"].shape == (1, 197, 768) and "blocks.11.attn.qkv.weight" in state
    torch.save({"model": state}, tmp_path / "mae_pretrain_vit_base.pth")
    report = load_weights(model, tmp_path / "mae_pretrain_vit_base.pth", verbose=False)
    missing = [k for k in report.missing if k.startswith("backbone.net.")]
    assert all(k.endswith(("rel_pos_h", "rel_pos_w")) for k in missing) and len(missing) == 2 * 12
    assert len([k for k in report.loaded if k.startswith("backbone.net.")]) == len(state) - 3


def test_position_embeddings_of_another_grid_are_resized(tmp_path):
    model = vitdet()
    net = model["backbone"].net
    state = mae_state_dict(net, grid=24)  # a 384-px timm ViT into a 64-px pretraining grid (4 x 4)
    torch.save(state, tmp_path / "vit384.pth")
    report = load_weights(model, tmp_path / "vit384.pth", verbose=False)
    assert "backbone.net.pos_embed" in report.loaded
    grid = state["pos_embed"][:, 1:].reshape(1, 24, 24, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 16, -1)
    torch.testing.assert_close(net.pos_embed[:, 1:], expected)
    torch.testing.assert_close(net.pos_embed[:, :1], state["pos_embed"][:, :1])  # the class-token slot kept


def test_detectron2_vitdet_names_load_as_they_are_with_relative_positions_resized(tmp_path):
    source = vitdet(img_size=128)  # global blocks' tables for an 8 x 8 grid: 15 rows
    g = torch.Generator().manual_seed(1)
    weights = {k: torch.randn(v.shape, generator=g).numpy() for k, v in source.state_dict().items()}
    with open(tmp_path / "model_final.pkl", "wb") as f:
        pickle.dump({"model": weights, "__author__": "Detectron2 Model Zoo"}, f)
    target = vitdet(img_size=64)  # 7 rows
    report = load_weights(target, tmp_path / "model_final.pkl", verbose=False)
    assert report.source.startswith("Detectron2 .pkl") and not report.missing and not report.mismatched
    rel = weights["backbone.net.blocks.1.attn.rel_pos_h"]
    expected = F.interpolate(torch.from_numpy(rel).t()[None], size=7, mode="linear")[0].t()
    torch.testing.assert_close(target["backbone"].net.blocks[1].attn.rel_pos_h.detach(), expected)
    torch.testing.assert_close(target["backbone"].simfp_2[4].weight.detach(),
                               torch.from_numpy(weights["backbone.simfp_2.4.weight"]))


def test_an_mae_vit_of_another_depth_is_refused(tmp_path):
    torch.save(mae_state_dict(vitdet(depth=2)["backbone"].net, grid=4), tmp_path / "shallow.pth")
    with pytest.raises(CheckpointError, match=r"different backbone than the model \(backbone.net\).*missing"):
        load_weights(vitdet(depth=4), tmp_path / "shallow.pth", verbose=False)


def test_a_new_format_is_one_registration(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Linear(2, 3))
    torch.save({"my.w": torch.ones(3, 2), "my.b": torch.zeros(3)}, tmp_path / "mine.pth")

    def convert(weights, layout):
        return {"0.weight": weights["my.w"], "0.bias": weights["my.b"]}, [], []

    monkeypatch.setattr(registry, "_CONVERTERS", dict(registry._CONVERTERS))
    registry.register_converter(Converter(name="my format", recognise=lambda w, layout, obj: "my.w" in w,
                                          convert=convert, priority=5))
    report = load_weights(model, tmp_path / "mine.pth", verbose=False)
    assert report.source == "my format" and report.loaded == ["0.weight", "0.bias"]
    torch.testing.assert_close(model[0].weight.detach(), torch.ones(3, 2))


def test_timm_names_load_into_a_timm_backbone_and_torchvision_names_into_resnet(tmp_path):
    timm = pytest.importorskip("timm")
    file = timm.create_model("resnet18").state_dict()  # timm's own names: conv1, layer1.0..., fc
    torch.save(file, tmp_path / "resnet18_timm.pth")

    model = instantiate(compose("shapes_mask_rcnn", ["model/backbone=timm:resnet18"]).model)
    report = load_weights(model, tmp_path / "resnet18_timm.pth", verbose=False)
    assert report.source == "timm model resnet18_timm.pth" and sorted(report.ignored) == ["fc.bias", "fc.weight"]
    body = model.backbone.bottom_up.timm_model
    assert all(f"backbone.bottom_up.timm_model.{k}" in report.loaded for k in body.state_dict())
    torch.testing.assert_close(body.layer3[1].conv2.weight.detach(), file["layer3.1.conv2.weight"])

    # The same names into a detrun ResNet-18 are torchvision's (they are the same names).
    resnet = instantiate(compose("shapes_mask_rcnn", ["model/backbone=R18", "model.backbone.bottom_up.width=64"]).model)
    assert load_weights(resnet, tmp_path / "resnet18_timm.pth", verbose=False).source == "torchvision ImageNet ResNet"


def test_convnext_timm_names_map_to_the_flattened_feature_modules(tmp_path):
    timm = pytest.importorskip("timm")
    file = timm.create_model("convnext_tiny").state_dict()
    assert "stages.2.blocks.4.conv_dw.weight" in file
    torch.save({"state_dict": file}, tmp_path / "convnext_tiny.pth")
    from detrun.modeling import TimmBackbone

    backbone = TimmBackbone(model_name="convnext_tiny", pretrained_file=str(tmp_path / "convnext_tiny.pth"))
    torch.testing.assert_close(backbone.timm_model.stages_2.blocks[4].conv_dw.weight.detach(),
                               file["stages.2.blocks.4.conv_dw.weight"])
    np.testing.assert_array_equal(backbone.timm_model.stem_0.bias.detach().numpy(), file["stem.0.bias"].numpy())
