"""Mask R-CNN R101-FPN on COCO, Detectron2's 1x schedule; start from ``model.weights=/path/to/R-101.pkl``."""
from .mask_rcnn_R50 import dataloader, evaluator, lr_scheduler, model, optimizer, trainer

model.backbone.bottom_up.depth = 101
