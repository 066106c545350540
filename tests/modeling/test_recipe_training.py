"""Every model recipe builds, and a few training steps on one fixed batch of tiny shapes images
give finite losses that go down.

The COCO recipes freeze their batch norms and expect ImageNet weights (``model.weights``); the
test writes stand-in "pretrained" ResNet weights whose BN statistics are those of the batch,
and loads them through ``model.weights`` like a user would. The learning rate is scaled to the
batch of 2 (linear scaling rule), and fewer proposals are sampled than for COCO, to stay fast:
the mask head's cost grows with the number of foreground proposals.
"""
import math

import pytest
import torch
from omegaconf import OmegaConf

from detrun.config import get_recipe, instantiate
from detrun.modeling import ResNet

RECIPES = ["shapes_mask_rcnn", "mask_rcnn_R50", "mask_rcnn_R101", "faster_rcnn_R50", "mask_rcnn_R50_torchvision"]
STEPS = 5


def tiny_shapes_loader(cfg, root):
    """The shapes training loader with 4 images of 96 px and batch 2, in the model's input format."""
    loader = get_recipe("shapes_mask_rcnn").dataloader.train
    loader.dataset.update(num_images=4, image_size=96, min_size=16, max_size=40, root=str(root))
    loader.total_batch_size = 2
    loader.mapper.image_format = cfg.model.input_format
    return loader


def batch_statistics_weights(cfg, batch, path):
    """A ResNet state dict (detrun names) whose BN statistics normalise `batch`: stands in for ImageNet weights."""
    bottom_up = cfg.model.backbone.bottom_up
    resnet = ResNet(depth=bottom_up.depth, norm="BN", freeze_at=0, stride_in_1x1=bottom_up.stride_in_1x1)
    for m in resnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running stats = plain average over this one forward
    for stage in resnet.stage_names:
        for block in getattr(resnet, stage):
            # Small residual branches, as in trained ResNets: activations don't grow with depth.
            last_conv = block.conv3 if hasattr(block, "conv3") else block.conv2
            last_conv.norm.weight.data.fill_(0.2)
    mean = torch.tensor(cfg.model.pixel_mean).view(-1, 1, 1)
    std = torch.tensor(cfg.model.pixel_std).view(-1, 1, 1)
    images = torch.stack([(x["image"] - mean) / std for x in batch])
    with torch.no_grad():
        resnet.train()(images)
    torch.save({"model": resnet.state_dict(), "format": "detrun"}, path)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_on_a_fixed_batch(name, tmp_path):
    torch.manual_seed(0)
    cfg = get_recipe(name)
    cfg.model.roi_heads.num_classes = 3
    cfg.model.proposal_generator.post_nms_topk = [100, 50]
    cfg.model.roi_heads.batch_size_per_image = 32
    cfg.model.roi_heads.box_predictor.test_topk_per_image = 10
    cfg.optimizer.lr *= 2 / cfg.dataloader.train.total_batch_size
    batch = next(iter(instantiate(tiny_shapes_loader(cfg, tmp_path))))
    if cfg.model.backbone.bottom_up.norm == "FrozenBN":
        batch_statistics_weights(cfg, batch, tmp_path / "resnet.pth")
        cfg.model.weights = str(tmp_path / "resnet.pth")
    assert OmegaConf.create(OmegaConf.to_yaml(cfg)) == cfg  # the recipe round-trips through YAML

    model = instantiate(cfg.model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = instantiate(cfg.optimizer, params=params)
    totals = []
    for _ in range(STEPS):
        losses = model(batch)
        assert all(k.startswith("loss_") and v.dim() == 0 for k, v in losses.items())
        total = sum(losses.values())
        assert math.isfinite(total.item()), losses
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        totals.append(total.item())
    expected = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    if cfg.model.roi_heads.mask_head is not None:
        expected.add("loss_mask")
    assert set(losses) == expected
    assert min(totals[-2:]) < totals[0], totals

    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in x.items() if k != "instances"} for x in batch])
    for x, out in zip(batch, outputs):
        instances = out["instances"]
        assert instances.image_size == (x["height"], x["width"])
        assert instances.pred_classes.dtype == torch.int64 and torch.all(instances.pred_classes < 3)
        if cfg.model.roi_heads.mask_head is not None:
            assert instances.pred_masks.dtype == torch.bool
            assert instances.pred_masks.shape[1:] == (x["height"], x["width"])
