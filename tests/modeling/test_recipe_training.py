"""Every recipe builds, and a few training steps on one fixed batch of tiny shapes images give
finite losses that go down; in eval mode its outputs follow the detector contract.

Recipes are taken from `list_recipes()`, so a new architecture is covered the day its recipe
lands. Each recipe is shrunk generically (`shrink`): every `num_classes` and `num_keypoints` it
sets becomes the shapes set's (3 classes, 6 keypoints), and proposal/detection counts are lowered
where the recipe has them, to stay fast: the mask and keypoint heads' cost grows with the number
of foreground proposals. Recipes for other data sets (COCO) train on the same tiny shapes batch.
The learning rate is scaled to the batch of 2 (linear scaling rule).

Recipes whose ResNet has frozen batch norms expect ImageNet weights (``model.weights``); the test
writes stand-in "pretrained" ResNet weights whose BN statistics are those of the batch, and
loads them through ``model.weights`` like a user would.
"""
import functools
import math
from collections.abc import Iterator

import pytest
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from detrun.config import DEFAULT_RECIPE, get_recipe, instantiate, list_recipes, locate
from detrun.data import shapes_dataset, shapes_panoptic_dataset
from detrun.data.datasets.shapes_render import KEYPOINT_NAMES
from detrun.modeling import ResNet

STEPS = 5
NUM_CLASSES = 3
# The shapes set's sizes, replacing those of the data set a recipe was written for (COCO).
DATA_SIZES = {"num_classes": NUM_CLASSES, "num_keypoints": len(KEYPOINT_NAMES)}
# Semantic heads of models that train on label maps use the panoptic shapes set's classes:
# "things" + stripes, checker, noise. Such models train on that set (its recipe's loader).
SEMANTIC_CLASSES = 4
PANOPTIC_SHAPES_RECIPE = "shapes_panoptic_fpn"
# Upper bounds for proposal and detection counts, by config key (lists: [train, test]).
TINY_COUNTS = {
    "post_nms_topk": [100, 50],
    "batch_size_per_image": 32,
    "test_topk_per_image": 10,
    "max_detections_per_image": 10,
    "test_topk_candidates": 100,
    "square_pad": 128,  # ViTDet pads every image to 1024 x 1024; the tiny images fit 128
}
# Recipes whose model needs an optional extra: skipped where it isn't installed.
EXTRAS = {"TimmBackbone": "timm"}


def walk(node: DictConfig | ListConfig) -> Iterator[tuple[DictConfig | ListConfig, str | int]]:
    """(container, key) of every entry under `node` that is not an interpolation, depth first.

    Interpolated entries (``num_classes: ${..num_classes}``) follow the value they point to.
    """
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if OmegaConf.is_interpolation(node, key):
            continue
        yield node, key
        if isinstance(node[key], (DictConfig, ListConfig)):
            yield from walk(node[key])


def shrink(model: DictConfig) -> None:
    """Set the sizes in DATA_SIZES wherever the model tree has them and cap the counts in TINY_COUNTS."""
    for node, key in walk(model):
        if key in DATA_SIZES:
            node[key] = DATA_SIZES[key]
        elif key in TINY_COUNTS and node[key] is not None:
            cap = TINY_COUNTS[key]
            node[key] = [min(v, c) for v, c in zip(node[key], cap)] if isinstance(cap, list) else min(node[key], cap)
    if "sem_seg_head" in model:
        model.sem_seg_head.num_classes = SEMANTIC_CLASSES


def tiny_shapes_loader(cfg: DictConfig, root) -> DictConfig:
    """The recipe's training loader on 4 shapes images of 96 px, batch 2.

    A recipe for another data set gets the default recipe's shapes loader with its own mapper
    options (image format, masks, keypoints) but not its augmentations (COCO's resizing to 800 px
    would only cost time).
    """
    loader = cfg.dataloader.train
    if locate(loader.dataset._target_) not in (shapes_dataset, shapes_panoptic_dataset):
        options = OmegaConf.to_container(loader.mapper)  # interpolations kept, resolved in `cfg`
        del options["augmentations"]
        reads_label_maps = "sem_seg" in locate(cfg.model._target_).training_targets
        loader = get_recipe(PANOPTIC_SHAPES_RECIPE if reads_label_maps else DEFAULT_RECIPE).dataloader.train
        loader.mapper.update(options)
    loader.dataset.update(num_images=4, image_size=96, min_size=16, max_size=40, root=str(root))
    loader.total_batch_size = 2
    return loader


def frozen_bn_resnet(model: DictConfig) -> DictConfig | None:
    """The model's ResNet node if its batch norms are frozen (they expect pretrained statistics)."""
    for node, key in walk(model):
        value = node[key]
        if isinstance(value, DictConfig) and "_target_" in value and locate(value._target_) is ResNet \
                and value.get("norm") == "FrozenBN":
            return value
    return None


def batch_statistics_weights(resnet: DictConfig, model: DictConfig, batch: list[dict], path) -> None:
    """A state dict of the `resnet` node (detrun names) whose BN statistics normalise `batch` after
    the `model`'s pixel normalisation: stands in for ImageNet weights."""
    kwargs = {**OmegaConf.to_container(resnet, resolve=True), "norm": "BN", "freeze_at": 0}
    net = instantiate(OmegaConf.create(kwargs))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running stats = plain average over this one forward
    for stage in net.stage_names:
        for block in getattr(net, stage):
            # Small residual branches, as in trained ResNets: activations don't grow with depth.
            last_conv = block.conv3 if hasattr(block, "conv3") else block.conv2
            last_conv.norm.weight.data.fill_(0.2)
    mean = torch.tensor(model.pixel_mean).view(-1, 1, 1)
    std = torch.tensor(model.pixel_std).view(-1, 1, 1)
    images = torch.stack([(x["image"] - mean) / std for x in batch])
    with torch.no_grad():
        net.train()(images)
    torch.save({"model": net.state_dict(), "format": "detrun"}, path)


def check_outputs(batch: list[dict], outputs: list[dict]) -> None:
    """One dict per input, each result at the input's height x width (`MetaArchitecture`'s contract)."""
    assert len(outputs) == len(batch)
    for x, out in zip(batch, outputs):
        size = (x["height"], x["width"])
        assert out and set(out) <= {"instances", "sem_seg", "panoptic_seg"}, set(out)
        if "instances" in out:
            instances = out["instances"]
            assert instances.image_size == size
            assert instances.pred_classes.dtype == torch.int64 and torch.all(instances.pred_classes < NUM_CLASSES)
            if instances.has("pred_masks"):
                assert instances.pred_masks.dtype == torch.bool and instances.pred_masks.shape[1:] == size
            if instances.has("pred_keypoints"):
                assert instances.pred_keypoints.shape[1:] == (len(KEYPOINT_NAMES), 3)
        if "sem_seg" in out:
            assert out["sem_seg"].shape[1:] == size
        if "panoptic_seg" in out:
            assert out["panoptic_seg"][0].shape == size


def shrunk_recipe(name: str, root) -> DictConfig:
    """Recipe `name` with its model shrunk, its learning rate scaled to the batch of 2 and the tiny loader."""
    cfg = get_recipe(name)
    shrink(cfg.model)
    cfg.optimizer.lr *= 2 / cfg.dataloader.train.total_batch_size
    cfg.dataloader.train = tiny_shapes_loader(cfg, root)
    return cfg


@functools.cache
def training_setup(name: str) -> str:
    """What the test below trains for recipe `name`: its shrunk model, optimizer and tiny loader."""
    cfg = shrunk_recipe(name, root="ROOT")
    for node, key in walk(cfg.model):
        if key == "test_score_thresh":  # LVIS keeps 1e-4, COCO 0.05: the same training, outputs capped alike
            node[key] = None
    return OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, ["model", "optimizer"])) + OmegaConf.to_yaml(cfg.dataloader.train)


def same_test_as_earlier_recipe(name: str) -> str | None:
    """The first recipe listed before `name` that the test would train exactly as `name` (e.g. a
    COCO recipe's variant for another data set, which differs only in classes and data): training
    it again would test nothing new."""
    earlier = list_recipes()[:list_recipes().index(name)]
    return next((r for r in earlier if training_setup(r) == training_setup(name)), None)


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_trains_on_a_fixed_batch(name, tmp_path):
    torch.manual_seed(0)
    cfg = shrunk_recipe(name, tmp_path)
    for target, module in EXTRAS.items():
        if target in OmegaConf.to_yaml(cfg.model):
            pytest.importorskip(module)
    twin = same_test_as_earlier_recipe(name)
    if twin is not None:
        pytest.skip(f"shrunk to the same model, optimizer and loader as {twin}, tested there")
    batch = next(iter(instantiate(cfg.dataloader.train)))
    resnet = frozen_bn_resnet(cfg.model)
    if resnet is not None:
        batch_statistics_weights(resnet, cfg.model, batch, tmp_path / "resnet.pth")
        cfg.model.weights = str(tmp_path / "resnet.pth")
    assert OmegaConf.create(OmegaConf.to_yaml(cfg)) == cfg  # the recipe round-trips through YAML

    model = instantiate(cfg.model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = instantiate(cfg.optimizer, params=params)
    totals = []
    for _ in range(STEPS):
        losses = model(batch)
        assert losses and all(k.startswith("loss_") and v.dim() == 0 for k, v in losses.items()), losses
        total = sum(losses.values())
        assert all(math.isfinite(v.item()) for v in losses.values()), losses
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert min(totals[-2:]) < totals[0], totals

    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in x.items() if k not in model.training_targets} for x in batch])
    check_outputs(batch, outputs)
