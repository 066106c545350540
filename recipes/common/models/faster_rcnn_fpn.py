"""Faster R-CNN, ResNet-50-FPN, with Detectron2's defaults: `mask_rcnn_fpn` without the mask branch."""
from copy import deepcopy

from .mask_rcnn_fpn import model as _mask_rcnn

model = deepcopy(_mask_rcnn)  # a copy, so that importing both models keeps both intact
model.roi_heads.branches = {}
