"""A user-defined backbone plugs in along each path the README's "Your own backbone" and "Short
names" show: a class defined in a recipe file under the FPN (which reads its `output_shape()`), a
short name a recipe file registers, and a ``_target_`` swapped on the command line.
"""
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

import detrun.recipes.common.models.backbones as backbones
from detrun.config import InstantiationError, compose, get_recipe, instantiate
from detrun.modeling import FPN, LastLevelMaxPool, ResNet

# A user's backbone, as the source of their recipe file or package: "c3" at stride 8, "c4" at stride 16.
TINY_BACKBONE = '''
import torch.nn.functional as F
from torch import nn

from detrun.config import L
from detrun.modeling import Backbone, ShapeSpec


class TinyBackbone(Backbone):
    def __init__(self, *, width: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=4, padding=1)
        self.c3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.c4 = nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)
        self.width = width

    def forward(self, x):
        c3 = F.relu(self.c3(F.relu(self.stem(x))))
        return {"c3": c3, "c4": F.relu(self.c4(c3))}

    def output_shape(self):
        return {"c3": ShapeSpec(channels=2 * self.width, stride=8), "c4": ShapeSpec(channels=4 * self.width, stride=16)}
'''

RECIPE = TINY_BACKBONE + '''
from detrun.recipes.shapes_mask_rcnn import dataloader, lr_scheduler, model, optimizer, trainer

model.backbone.bottom_up = L(TinyBackbone)(width=16)  # -> FPN levels p3, p4 (+ p5 from the max-pool top block)
model.proposal_generator.in_features = ["p3", "p4", "p5"]
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64]]
model.proposal_generator.anchor_generator.strides = [8, 16, 32]
model.roi_heads.box_in_features = model.roi_heads.branches.mask.in_features = ["p3", "p4"]
model.roi_heads.box_pooler.scales = model.roi_heads.branches.mask.pooler.scales = [0.125, 0.0625]

dataloader.train.dataset.update(num_images=2, image_size=96, min_size=16, max_size=40, root="ROOT")
dataloader.train.total_batch_size = 2
'''

SHORT_NAME_RECIPE = TINY_BACKBONE + '''
from detrun.recipes.common.models.backbones import BACKBONES
from detrun.recipes.shapes_mask_rcnn import model

BACKBONES["tiny"] = L(TinyBackbone)(width=8)
'''


def run_cli(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", "detrun", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "my_recipe.py"
    path.write_text(RECIPE.replace("ROOT", str(tmp_path / "datasets")))
    return path


@pytest.fixture
def registry(monkeypatch):
    """BACKBONES as a copy for the test, so names a recipe adds don't outlive it."""
    monkeypatch.setattr(backbones, "BACKBONES", dict(backbones.BACKBONES))
    return backbones.BACKBONES


def test_custom_backbone_defined_in_a_recipe_file_trains(recipe_file):
    torch.manual_seed(0)
    cfg = get_recipe(str(recipe_file))
    assert cfg.model.backbone.bottom_up._target_ == f"{recipe_file.resolve()}:TinyBackbone"
    model = instantiate(cfg.model).train()
    assert type(model.backbone.bottom_up).__name__ == "TinyBackbone"
    assert list(model.backbone.output_shape()) == ["p3", "p4", "p5"]
    optimizer = instantiate(cfg.optimizer, params=[p for p in model.parameters() if p.requires_grad])
    batch = next(iter(instantiate(cfg.dataloader.train)))
    losses = model(batch)
    assert {"loss_rpn_cls", "loss_cls", "loss_mask"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    before = model.backbone.bottom_up.c4.weight.detach().clone()
    grad = model.backbone.bottom_up.c4.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the losses reach the custom backbone
    optimizer.step()
    assert not torch.equal(model.backbone.bottom_up.c4.weight, before)


def test_heads_reading_missing_features_fail_at_build(recipe_file):
    cfg = get_recipe(str(recipe_file))
    cfg.model.roi_heads.box_in_features = ["p2", "p3"]
    with pytest.raises(InstantiationError, match=r"roi_heads.box_in_features = \['p2', 'p3'\] names \['p2'\]"):
        instantiate(cfg.model)


def test_fpn_without_in_features_takes_every_bottom_up_output_by_stride():
    bottom_up = ResNet(depth=18, width=8, norm="BN", freeze_at=0, out_features=["res4", "res3"])
    fpn = FPN(bottom_up=bottom_up, out_channels=8, top_block=LastLevelMaxPool())
    assert fpn.in_features == ["res3", "res4"]
    assert {k: (s.channels, s.stride) for k, s in fpn.output_shape().items()} == {"p3": (8, 8), "p4": (8, 16),
                                                                                  "p5": (8, 32)}
    same_stride = ResNet(depth=18, width=8, norm="BN", freeze_at=0, out_features=["stem", "res2"])
    with pytest.raises(ValueError, match=r"\['stem', 'res2'\] must have strides doubling .*set the FPN's in_features"):
        FPN(bottom_up=same_stride, out_channels=8)


@pytest.mark.parametrize(("recipe", "in_features"), [("mask_rcnn_R50", ["res2", "res3", "res4", "res5"]),
                                                     ("retinanet_R50", ["res3", "res4", "res5"])])
def test_recipes_build_the_fpn_their_bottom_up_out_features_name(recipe, in_features):
    """The recipes leave the FPN's in_features to output_shape(): the same parameters as naming them."""
    cfg = get_recipe(recipe).model.backbone
    derived = {k: v.shape for k, v in instantiate(cfg).state_dict().items()}
    cfg.in_features = in_features
    assert derived == {k: v.shape for k, v in instantiate(cfg).state_dict().items()}


def test_short_name_registered_in_a_recipe_file(tmp_path, registry):
    path = tmp_path / "my_recipe.py"
    path.write_text(SHORT_NAME_RECIPE)
    cfg = compose(str(path), ["model/backbone=tiny"])
    assert dict(cfg.model.backbone.bottom_up) == {"_target_": f"{path.resolve()}:TinyBackbone", "width": 8}
    assert list(instantiate(cfg.model.backbone).output_shape()) == ["p3", "p4", "p5"]
    result = run_cli(f"recipe={path}", "model/backbone=tiny", "task=print_config", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    assert OmegaConf.load(tmp_path / "run" / "recipe.yaml").model.backbone.bottom_up == cfg.model.backbone.bottom_up


def test_target_swapped_on_the_command_line_names_the_arguments_it_does_not_take(tmp_path):
    (tmp_path / "my_package.py").write_text(TINY_BACKBONE)
    swap = ("task=print_config", "model.backbone.bottom_up._target_=my_package.TinyBackbone")
    result = run_cli(*swap, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "'model.backbone.bottom_up' (my_package.TinyBackbone): unknown argument 'depth'" in result.stderr
    leftovers = ["depth", "out_features", "norm", "freeze_at", "stride_in_1x1"]
    assert all(f"'{name}'" in result.stderr for name in leftovers)
    deleted = [f"~model.backbone.bottom_up.{name}" for name in leftovers]
    result = run_cli(*swap, *deleted, f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
