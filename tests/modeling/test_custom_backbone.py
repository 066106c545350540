"""A user-defined backbone plugs into Mask R-CNN through a recipe file, by `_target_`, and trains.

The backbone is defined here (as a user would in their own module); a recipe file written by
the test imports the built-in shapes recipe and swaps it in under the FPN.
"""
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detrun.config import InstantiationError, get_recipe, instantiate
from detrun.modeling import Backbone, ShapeSpec


class TinyBackbone(Backbone):
    """Two plain conv stages: "c3" at stride 8 and "c4" at stride 16."""

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


RECIPE = """
from detrun.config import L
from detrun.recipes.shapes_mask_rcnn import dataloader, lr_scheduler, model, optimizer, trainer
from test_custom_backbone import TinyBackbone

model.backbone.bottom_up = L(TinyBackbone)(width=16)
model.backbone.in_features = ["c3", "c4"]           # -> FPN levels p3, p4 (+ p5 from the max-pool top block)
model.proposal_generator.in_features = ["p3", "p4", "p5"]
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64]]
model.proposal_generator.anchor_generator.strides = [8, 16, 32]
model.roi_heads.box_in_features = model.roi_heads.branches.mask.in_features = ["p3", "p4"]
model.roi_heads.box_pooler.scales = model.roi_heads.branches.mask.pooler.scales = [0.125, 0.0625]

dataloader.train.dataset.update(num_images=2, image_size=96, min_size=16, max_size=40, root="{root}")
dataloader.train.total_batch_size = 2
"""


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "my_recipe.py"
    path.write_text(textwrap.dedent(RECIPE).format(root=tmp_path / "datasets"))
    return path


def test_custom_backbone_trains_through_a_recipe(recipe_file):
    torch.manual_seed(0)
    cfg = get_recipe(str(recipe_file))
    assert cfg.model.backbone.bottom_up._target_ == "test_custom_backbone.TinyBackbone"
    model = instantiate(cfg.model).train()
    assert isinstance(model.backbone.bottom_up, TinyBackbone)
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
