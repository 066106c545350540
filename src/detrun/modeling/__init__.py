"""Backbones, proposal generators, ROI heads and meta-architectures."""
from .backbone import (
    FPN,
    Backbone,
    FrozenBatchNorm2d,
    LastLevelMaxPool,
    LastLevelP6P7,
    ResNet,
    SimpleFeaturePyramid,
    TimmBackbone,
    ViT,
    get_norm,
)
from .box_regression import Box2BoxTransform
from .dense_heads import RetinaNetHead
from .feature_protocol import FeatureUse, ReadsFeatures
from .losses import sigmoid_focal_loss
from .matcher import Matcher
from .meta_arch import DenseDetector, GeneralizedRCNN, MetaArchitecture, PanopticFPN, RetinaNet, SemanticSegmentor
from .postprocess import detector_postprocess
from .proposal_generator import RPN, DefaultAnchorGenerator, ProposalGenerator, StandardRPNHead
from .roi_heads import (
    CascadeROIHeads,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    KRCNNConvDeconvUpsampleHead,
    MaskRCNNConvUpsampleHead,
    ROIBranch,
    ROIHeads,
    ROIPooler,
    StandardROIHeads,
)
from .sem_seg_head import SemSegFPNHead
from .shape_spec import ShapeSpec

__all__ = [
    "FPN",
    "RPN",
    "Backbone",
    "Box2BoxTransform",
    "CascadeROIHeads",
    "DefaultAnchorGenerator",
    "DenseDetector",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "FeatureUse",
    "KRCNNConvDeconvUpsampleHead",
    "FrozenBatchNorm2d",
    "GeneralizedRCNN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "MaskRCNNConvUpsampleHead",
    "Matcher",
    "MetaArchitecture",
    "PanopticFPN",
    "ProposalGenerator",
    "ROIBranch",
    "ROIHeads",
    "ROIPooler",
    "ReadsFeatures",
    "ResNet",
    "RetinaNet",
    "RetinaNetHead",
    "SemSegFPNHead",
    "SemanticSegmentor",
    "ShapeSpec",
    "SimpleFeaturePyramid",
    "StandardROIHeads",
    "StandardRPNHead",
    "TimmBackbone",
    "ViT",
    "detector_postprocess",
    "get_norm",
    "sigmoid_focal_loss",
]
