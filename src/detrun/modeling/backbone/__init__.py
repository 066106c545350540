"""Backbones: the `Backbone` contract, ResNet, FPN and the norm factory they share."""
from .backbone import Backbone
from .fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from .norm import NORMS, Conv2dNorm, FrozenBatchNorm2d, get_norm
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet

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
    "ResNet",
    "get_norm",
]
