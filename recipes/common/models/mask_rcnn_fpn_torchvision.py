"""Mask R-CNN, ResNet-50-FPN, in torchvision's conventions (its ``maskrcnn_resnet50_fpn``).

Differences from Detectron2's defaults (`mask_rcnn_fpn`): stride in the 3x3 convs of the
ResNet; RGB input normalised with ImageNet mean/std; rounded anchors whose strides are
inferred from the padded image size; RPN keeping 2000 proposals per image in training,
dropping boxes under 1e-3 px and ranking by sigmoid probability; ROIAlign with 2 samples per bin and no half-pixel alignment;
detections under 1e-2 px dropped. With these, torchvision's weights give torchvision's
detections (tests/modeling/test_torchvision_parity.py).

Weights: a torchvision ImageNet ResNet-50 (``resnet50-0676ba61.pth``) for training, or its
COCO detector (``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``) with ``model.roi_heads.num_classes=90``
(torchvision's 91 COCO category ids including background: detrun class k is COCO id k + 1).
"""
from copy import deepcopy

from .mask_rcnn_fpn import model as _detectron2_defaults

# A copy: a recipe importing both this and mask_rcnn_fpn must not see one change the other.
model = deepcopy(_detectron2_defaults)
model.backbone.bottom_up.stride_in_1x1 = False
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

model.proposal_generator.anchor_generator.strides = None  # padded image size // feature size, per level
model.proposal_generator.anchor_generator.round_anchors = True
model.proposal_generator.post_nms_topk = [2000, 1000]
model.proposal_generator.min_box_size = 1e-3
model.proposal_generator.nms_on_sigmoid = True  # rank by sigmoid: saturated logits tie as in torchvision

model.roi_heads.box_pooler.sampling_ratio = 2
model.roi_heads.box_pooler.aligned = False
model.roi_heads.branches.mask.pooler.sampling_ratio = 2
model.roi_heads.branches.mask.pooler.aligned = False
model.roi_heads.box_predictor.min_box_size = 1e-2
