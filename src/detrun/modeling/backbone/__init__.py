"""Backbones: the `Backbone` contract, ResNet, FPN, ViT with its simple feature pyramid, timm models,
and the norm factory they share."""
from .backbone import Backbone
from .fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from .norm import NORMS, Conv2dNorm, FrozenBatchNorm2d, LayerNorm2d, get_norm
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet
from .timm_backbone import TimmBackbone
from .simple_feature_pyramid import SimpleFeaturePyramid
from .vit import ViT
from . import vit_weights  # noqa: F401,E402 (registers the ViT family's checkpoint formats)

__all__ = [
    "NORMS",
    "FPN",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "Conv2dNorm",
    "FrozenBatchNorm2d",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "LayerNorm2d",
    "ResNet",
    "SimpleFeaturePyramid",
    "TimmBackbone",
    "ViT",
    "get_norm",
]
