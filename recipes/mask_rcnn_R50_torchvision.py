"""Mask R-CNN R50-FPN in torchvision's conventions: loads torchvision's weights and reproduces its outputs."""
from .common.models.mask_rcnn_fpn_torchvision import model
