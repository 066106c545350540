"""Keypoint R-CNN R50-FPN in torchvision's conventions (its ``keypointrcnn_resnet50_fpn``), on COCO person
keypoints with the 1x schedule.

Loads torchvision's weights and reproduces its outputs: start training from its ImageNet
ResNet-50 (``model.weights=/path/to/resnet50-0676ba61.pth``), or evaluate its COCO detector
(``model.weights=/path/to/keypointrcnn_resnet50_fpn_coco-fc266e95.pth``).
"""
from .keypoint_rcnn_R50 import dataloader, evaluator, lr_scheduler, optimizer, trainer
from .common.models.keypoint_rcnn_fpn_torchvision import model
