"""Keypoint R-CNN, ResNet-50-FPN, in torchvision's conventions (its ``keypointrcnn_resnet50_fpn``).

`mask_rcnn_fpn_torchvision`'s conventions (ResNet, normalisation, anchors, RPN, ROIAlign with 2
samples per bin and no half-pixel alignment) with `keypoint_rcnn_fpn`'s keypoint branch, whose
keypoint scores are the heatmap logits at the maxima (torchvision's ``keypoints_scores``).
torchvision's box head keeps plain L1 box regression and 2000 training proposals.

Weights: torchvision's COCO detector (``keypointrcnn_resnet50_fpn_coco-fc266e95.pth``) loads as it is
(its classes are background + person, detrun's one class is person).
"""
from copy import deepcopy

from .keypoint_rcnn_fpn import model as _keypoint_rcnn
from .mask_rcnn_fpn_torchvision import model as _mask_rcnn_torchvision

model = deepcopy(_mask_rcnn_torchvision)
model.roi_heads.num_classes = 1
model.roi_heads.branches = deepcopy(_keypoint_rcnn.roi_heads.branches)
model.roi_heads.branches.keypoint.pooler.sampling_ratio = 2
model.roi_heads.branches.keypoint.pooler.aligned = False
model.roi_heads.branches.keypoint.head.keypoint_score = "logit"
