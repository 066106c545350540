"""RetinaNet, ResNet-50-FPN, in torchvision's conventions (its ``retinanet_resnet50_fpn``).

Differences from Detectron2's defaults (`retinanet`): stride in the 3x3 convs of the ResNet; RGB
input normalised with ImageNet mean/std; P6/P7 from the FPN's P5 rather than C5; anchor sizes
truncated to whole pixels, cell anchors rounded and ordered ratio by ratio, strides inferred from
the padded image size; L1 box loss; the loss normalised by the batch's foreground count (no moving
average; torchvision normalises per image, which differs slightly). With these, torchvision's
weights give torchvision's detections (tests/modeling/test_retinanet_parity.py).

Weights: a torchvision ImageNet ResNet-50 for training, or its COCO detector
(``retinanet_resnet50_fpn_coco-eeacb38b.pth``) with ``model.num_classes=91`` (torchvision's COCO
category ids: detrun class k is COCO id k).
"""
from copy import deepcopy

from .retinanet import model as _detectron2_defaults

# A copy: a recipe importing both this and retinanet must not see one change the other.
model = deepcopy(_detectron2_defaults)
model.backbone.bottom_up.stride_in_1x1 = False
model.backbone.top_block.update(in_channels="${..out_channels}", in_feature="p5")
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

model.anchor_generator.sizes = [[x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))] for x in [32, 64, 128, 256, 512]]
model.anchor_generator.strides = None  # padded image size // feature size, per level
model.anchor_generator.round_anchors = True
model.anchor_generator.ratio_major = True
model.smooth_l1_beta = 0.0
model.loss_normalizer_momentum = 0.0
