"""Mask R-CNN R50-FPN in torchvision's conventions (its ``maskrcnn_resnet50_fpn``), on COCO with the 1x schedule.

Loads torchvision's weights and reproduces its outputs: start training from its ImageNet
ResNet-50 (``model.weights=/path/to/resnet50-0676ba61.pth``), or evaluate its COCO detector
(``model.weights=/path/to/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth model.roi_heads.num_classes=90``;
its classes are COCO category ids - 1, not the 80 contiguous ones).
"""
from .mask_rcnn_R50 import dataloader, evaluator, lr_scheduler, optimizer, trainer
from .common.models.mask_rcnn_fpn_torchvision import model
