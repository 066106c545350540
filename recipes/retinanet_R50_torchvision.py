"""RetinaNet R50-FPN in torchvision's conventions (its ``retinanet_resnet50_fpn``), on COCO with the 1x schedule.

Loads torchvision's weights and reproduces its outputs: start training from its ImageNet
ResNet-50 (``model.weights=/path/to/resnet50-0676ba61.pth``), or evaluate its COCO detector
(``model.weights=/path/to/retinanet_resnet50_fpn_coco-eeacb38b.pth model.num_classes=91``;
its classes are COCO category ids, not the 80 contiguous ones).
"""
from .retinanet_R50 import dataloader, evaluator, lr_scheduler, optimizer, trainer
from .common.models.retinanet_torchvision import model
