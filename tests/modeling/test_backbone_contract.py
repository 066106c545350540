"""Every `Backbone` in detrun keeps its contract: `output_shape()` declares the names, channels
and strides of what `forward` returns, on inputs padded as `padding_constraints` says.

Backbones are found by walking `Backbone.__subclasses__()`, so a new one is covered the day it
lands; it needs an entry in `TINY_BACKBONES` (small constructor arguments), and
`test_every_backbone_has_a_tiny_instance` fails until it has one.
"""
import inspect

import pytest
import torch

import detrun.modeling  # noqa: F401  (imports every built-in backbone, so __subclasses__ sees them)
from detrun.modeling import (FPN, Backbone, LastLevelMaxPool, LastLevelP6P7, ResNet, SimpleFeaturePyramid,
                             TimmBackbone, ViT)
from detrun.structures import ImageList


NARROW_R18 = {"depth": 18, "width": 8, "norm": "BN", "freeze_at": 0}
FPN_CHANNELS = 16


def tiny_fpn(in_features: list[str], top_block_source: str | None = None) -> dict:
    """FPN arguments on a narrow ResNet-18: P6 by max pool, or P6/P7 from `top_block_source` ("res5" or "p5")."""
    bottom_up = ResNet(**NARROW_R18, out_features=in_features)
    top_block = LastLevelMaxPool()
    if top_block_source is not None:
        in_channels = FPN_CHANNELS if top_block_source == "p5" else bottom_up.output_shape()[top_block_source].channels
        top_block = LastLevelP6P7(in_channels=in_channels, out_channels=FPN_CHANNELS, in_feature=top_block_source)
    return {"bottom_up": bottom_up, "in_features": in_features, "out_channels": FPN_CHANNELS, "top_block": top_block}


# Backbone class -> {case id: constructor kwargs}: small instances that run in well under a second.
# Two windowed blocks of 2 x 2 patches and one global block.
TINY_VIT = {"img_size": 64, "patch_size": 16, "embed_dim": 32, "depth": 3, "num_heads": 2, "window_size": 2,
            "window_block_indexes": [0, 2], "pretrain_img_size": 64}

TINY_BACKBONES = {
    ResNet: {
        "R18": NARROW_R18,
        "R50-stem-res3": {"depth": 50, "width": 8, "out_features": ["stem", "res3"]},
    },
    FPN: {
        "maxpool": tiny_fpn(["res2", "res3", "res4", "res5"]),
        "p6p7-res5": tiny_fpn(["res3", "res4", "res5"], "res5"),
        "p6p7-p5": tiny_fpn(["res3", "res4", "res5"], "p5"),
    },
    ViT: {"windowed+global": TINY_VIT},
    SimpleFeaturePyramid: {
        "p2-p6": {"net": ViT(**TINY_VIT), "out_channels": FPN_CHANNELS, "top_block": LastLevelMaxPool()},
        "square": {"net": ViT(**TINY_VIT), "out_channels": FPN_CHANNELS, "top_block": LastLevelMaxPool(),
                   "square_pad": 128},
    },
    # Built in the test (needs the optional timm extra).
    TimmBackbone: {"resnet18": {"model_name": "resnet18", "out_features": ["res3", "res4", "res5"]}},
}


def detrun_backbones() -> list[type]:
    """Every concrete `Backbone` subclass defined in detrun (not in tests or user code)."""
    found, stack = [], [Backbone]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("detrun.") and not inspect.isabstract(sub):
                found.append(sub)
    return found


CASES = [pytest.param(cls, kwargs, id=f"{cls.__name__}-{name}")
         for cls in detrun_backbones() for name, kwargs in TINY_BACKBONES.get(cls, {}).items()]


def test_every_backbone_has_a_tiny_instance():
    missing = [f"{cls.__module__}.{cls.__qualname__}" for cls in detrun_backbones() if cls not in TINY_BACKBONES]
    assert not missing, (f"Backbone subclasses {missing} have no entry in TINY_BACKBONES "
                         f"({__file__}): add small constructor kwargs so the contract test covers them")


@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_output_shape_matches_forward(cls, kwargs):
    if cls is TimmBackbone:
        pytest.importorskip("timm")
    torch.manual_seed(0)
    backbone = cls(**kwargs).eval()
    shapes = backbone.output_shape()
    constraints = backbone.padding_constraints
    assert set(constraints) == {"size_divisibility", "square_size"}, constraints
    # Sides that are multiples of the coarsest stride: there `stride = input size / output size` exactly.
    coarsest = max(spec.stride for spec in shapes.values())
    big = (constraints["square_size"],) * 2 if constraints["square_size"] else (2 * coarsest, 3 * coarsest)
    small = (big[0] - 7, big[1] // 2 + 1)
    images = ImageList.from_tensors([torch.randn(3, *big), torch.randn(3, *small)], **constraints)
    height, width = images.tensor.shape[-2:]
    if constraints["size_divisibility"]:
        assert height % constraints["size_divisibility"] == 0 and width % constraints["size_divisibility"] == 0
    with torch.no_grad():
        features = backbone(images.tensor)

    assert set(features) == set(shapes)
    for name, spec in shapes.items():
        n, channels, h, w = features[name].shape
        assert (n, channels) == (2, spec.channels), (name, features[name].shape, spec)
        assert (height / h, width / w) == (spec.stride, spec.stride), (name, (height, width), (h, w), spec)


def test_padding_constraints_default_to_size_divisibility():
    class Divisible(Backbone):
        def forward(self, x):
            return {"out": x}

        def output_shape(self):
            return {}

        @property
        def size_divisibility(self):
            return 16

    assert Divisible().padding_constraints == {"size_divisibility": 16, "square_size": 0}


def test_image_list_square_size():
    images = ImageList.from_tensors([torch.ones(3, 20, 30), torch.ones(3, 40, 10)], size_divisibility=32,
                                    square_size=48)
    assert images.tensor.shape == (2, 3, 48, 48)  # square_size wins over size_divisibility
    assert images.image_sizes == [(20, 30), (40, 10)]
    assert images.tensor[0, :, 20:].abs().sum() == 0 and images.tensor[0, :, :, 30:].abs().sum() == 0
    with pytest.raises(ValueError, match="does not fit the backbone's square input of 48 x 48"):
        ImageList.from_tensors([torch.ones(3, 20, 49)], square_size=48)
