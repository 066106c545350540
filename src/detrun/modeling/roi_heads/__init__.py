"""ROI heads: pooling, box head and predictor, mask head, and the orchestrating StandardROIHeads."""
from .base import ROIHeads, attach_targets, match_and_label
from .branch import ROIBranch
from .box_head import FastRCNNConvFCHead
from .cascade import CascadeROIHeads
from .fast_rcnn import FastRCNNOutputLayers
from .keypoint_head import KRCNNConvDeconvUpsampleHead
from .mask_head import MaskRCNNConvUpsampleHead
from .poolers import ROIPooler
from .standard import StandardROIHeads

__all__ = [
    "CascadeROIHeads",
    "ROIBranch",
    "ROIHeads",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "KRCNNConvDeconvUpsampleHead",
    "MaskRCNNConvUpsampleHead",
    "ROIPooler",
    "StandardROIHeads",
    "attach_targets",
    "match_and_label",
]
