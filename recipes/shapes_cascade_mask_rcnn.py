"""Cascade Mask R-CNN for the synthetic shapes set: `shapes_mask_rcnn` with its box head and predictor
turned into Cascade R-CNN's three stages (IoU 0.5 / 0.6 / 0.7), same data and schedule."""
from .common.models.cascade_mask_rcnn_fpn import cascade_roi_heads
from .shapes_mask_rcnn import dataloader, evaluator, lr_scheduler, model, optimizer, trainer

model.roi_heads = cascade_roi_heads(model.roi_heads)
