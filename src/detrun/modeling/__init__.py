"""Backbones, proposal generators, ROI heads and meta-architectures."""
from .backbone import FPN, Backbone, FrozenBatchNorm2d, LastLevelMaxPool, LastLevelP6P7, ResNet, get_norm
from .box_regression import Box2BoxTransform
from .matcher import Matcher
from .meta_arch import GeneralizedRCNN, MetaArchitecture
from .postprocess import detector_postprocess
from .proposal_generator import RPN, DefaultAnchorGenerator, ProposalGenerator, StandardRPNHead
from .roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    ROIHeads,
    ROIPooler,
    StandardROIHeads,
)
from .shape_spec import ShapeSpec

__all__ = [
    "FPN",
    "RPN",
    "Backbone",
    "Box2BoxTransform",
    "DefaultAnchorGenerator",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "FrozenBatchNorm2d",
    "GeneralizedRCNN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "MaskRCNNConvUpsampleHead",
    "Matcher",
    "MetaArchitecture",
    "ProposalGenerator",
    "ROIHeads",
    "ROIPooler",
    "ResNet",
    "ShapeSpec",
    "StandardROIHeads",
    "StandardRPNHead",
    "detector_postprocess",
    "get_norm",
]
