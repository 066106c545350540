"""timm models as backbones: declared feature shapes match real outputs, freezing, the missing-extra
error, and a training step of ConvNeXt-T and ResNet-50 detectors through a recipe."""
import math
import sys

import pytest
import torch

from detrun.config import InstantiationError, compose, instantiate
from detrun.modeling.backbone.timm_backbone import MissingExtraError, TimmBackbone


def test_a_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # "import timm" raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'detrun\[timm\]'"):
        TimmBackbone(model_name="resnet18")
    node = compose("shapes_mask_rcnn", ["model/backbone=timm:resnet18"]).model.backbone.bottom_up
    with pytest.raises(InstantiationError, match=r"detrun\[timm\]"):
        instantiate(node)


@pytest.mark.parametrize("name", ["convnext_tiny", "resnet50", "efficientnet_b0"])
def test_output_shape_matches_the_real_outputs(name):
    pytest.importorskip("timm")
    backbone = TimmBackbone(model_name=name).eval()
    shapes = backbone.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"] and backbone.size_divisibility == 32
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 96, 160))
    assert list(out) == list(shapes)
    for key, spec in shapes.items():
        assert out[key].shape == (1, spec.channels, 96 // spec.stride, 160 // spec.stride), key


def test_out_features_freezing_and_unknown_names():
    pytest.importorskip("timm")
    backbone = TimmBackbone(model_name="resnet50", out_features=["res4", "res5"], freeze_at=2, frozen_norm=True)
    assert list(backbone.output_shape()) == ["res4", "res5"]
    body = backbone.timm_model
    frozen = {n.split(".")[0] for n, p in body.named_parameters() if not p.requires_grad}
    trained = {n.split(".")[0] for n, p in body.named_parameters() if p.requires_grad}
    assert frozen == {"conv1", "layer1"} and trained == {"layer2", "layer3", "layer4"}  # bn1 is frozen: no params
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert type(body.bn1).__name__ == "FrozenBatchNorm2d"
    stem_only = TimmBackbone(model_name="convnext_tiny", freeze_at=1).timm_model
    assert {n.split(".")[0] for n, p in stem_only.named_parameters() if not p.requires_grad} == {"stem_0", "stem_1"}
    with pytest.raises(ValueError, match=r"out_features \['res6'\]: it outputs res2 \(stride 4\)"):
        TimmBackbone(model_name="convnext_tiny", out_features=["res6"])
    with pytest.raises(ValueError, match="timm has no model 'convnext_tinyy'; similar: convnext"):
        TimmBackbone(model_name="convnext_tinyy")


@pytest.mark.parametrize("overrides", [[], ["model/backbone=timm:resnet50"]], ids=["convnext_tiny", "resnet50"])
def test_timm_detectors_train_a_step_through_the_recipe(overrides, tmp_path):
    pytest.importorskip("timm")
    from test_recipe_training import shrink, tiny_shapes_loader

    torch.manual_seed(0)
    cfg = compose("mask_rcnn_convnext_t_timm", overrides)
    shrink(cfg.model)
    cfg.dataloader.train = tiny_shapes_loader(cfg, tmp_path)
    batch = next(iter(instantiate(cfg.dataloader.train)))
    model = instantiate(cfg.model).train()
    bottom_up = model.backbone.bottom_up
    assert isinstance(bottom_up, TimmBackbone)
    with torch.no_grad():  # declared shapes = real outputs, as the FPN reads them
        real = bottom_up(model.preprocess_image(batch).tensor)
    assert {k: v.shape[1] for k, v in real.items()} == {k: s.channels for k, s in bottom_up.output_shape().items()}
    from detrun.engine.optim import build_optimizer

    optimizer = build_optimizer(model, cfg.optimizer, cfg.trainer)
    losses = model(batch)
    total = sum(losses.values())
    assert math.isfinite(total.item())
    total.backward()
    optimizer.step()
    assert all(p.grad is not None for p in bottom_up.parameters() if p.requires_grad)
