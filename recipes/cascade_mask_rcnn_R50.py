"""Cascade Mask R-CNN R50-FPN on COCO, Detectron2's 1x schedule (its cascade_mask_rcnn_R_50_FPN_1x).

Start from MSRA's ImageNet ResNet-50 as Detectron2 does: ``model.weights=/path/to/R-50.pkl``, and
train on 8 GPUs: ``trainer.gpus=8``.
"""
from .common.models.cascade_mask_rcnn_fpn import model
from .mask_rcnn_R50 import dataloader, evaluator, lr_scheduler, optimizer, trainer
