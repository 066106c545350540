"""The command-line backbone short names (``model/backbone=R101``)."""
import pytest

from detrun.config import L, get_recipe, instantiate
from detrun.errors import UserError
from detrun.modeling import ResNet
from detrun.recipes.common.models.backbones import BACKBONES, choose_backbone


def test_same_class_merges_keeping_recipe_settings():
    cfg = choose_backbone(get_recipe("shapes_mask_rcnn"), "R34")
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up.depth == 34 and bottom_up.norm == "BN" and bottom_up.width == 32  # shapes' settings kept
    backbone = instantiate(cfg.model.backbone)
    assert isinstance(backbone.bottom_up, ResNet) and len(backbone.bottom_up.res4) == 6


def test_other_class_replaces(monkeypatch):
    monkeypatch.setitem(BACKBONES, "R18-GN", L(ResNet)(depth=18, norm="GN", freeze_at=0))
    monkeypatch.setitem(BACKBONES, "custom", L("my_package.MyBackbone")(width=8))
    cfg = choose_backbone(get_recipe("mask_rcnn_R50"), "R18-GN")
    assert cfg.model.backbone.bottom_up.norm == "GN" and cfg.model.backbone.bottom_up.stride_in_1x1  # merged
    cfg = choose_backbone(cfg, "custom")
    assert dict(cfg.model.backbone.bottom_up) == {"_target_": "my_package.MyBackbone", "width": 8}


def test_unknown_name_lists_choices():
    with pytest.raises(UserError, match="unknown backbone 'R99'; registered names: R18, R34, R50, R101, R152"):
        choose_backbone(get_recipe("mask_rcnn_R50"), "R99")
