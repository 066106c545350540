"""ROI heads: pooling, box head and predictor, mask head, and the orchestrating StandardROIHeads."""
from .base import ROIHeads, attach_targets, match_and_label
from .branch import ROIBranch
from .box_head import FastRCNNConvFCHead
from .fast_rcnn import FastRCNNOutputLayers
from .mask_head import MaskRCNNConvUpsampleHead
from .poolers import ROIPooler
from .standard import StandardROIHeads

__all__ = [
    "ROIBranch",
    "ROIHeads",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "MaskRCNNConvUpsampleHead",
    "ROIPooler",
    "StandardROIHeads",
    "attach_targets",
    "match_and_label",
]
