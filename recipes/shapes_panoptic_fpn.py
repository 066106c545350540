"""Panoptic FPN for the panoptic shapes set, trained from scratch on a CPU in minutes.

`shapes_mask_rcnn`'s model (narrow ResNet-18, 64-channel FPN, shapes anchors and heads) plus the
semantic FPN head (64 channels, 4 classes: "things", stripes, checker, noise) on
``shapes_panoptic_train``; evaluated on ``shapes_panoptic_val`` by box/mask AP, mIoU and PQ.
The stuff-area limit scales Detectron2's 4096 px (for ~800x1200 images) to 192 px images.
"""
from detrun.config import L
from detrun.modeling import PanopticFPN

from .common.data.shapes_panoptic import dataloader
from .common.evaluation import panoptic_evaluators
from .common.models.panoptic_fpn import model as _panoptic
from .shapes_mask_rcnn import lr_scheduler, model as _mask_rcnn, optimizer, trainer

model = L(PanopticFPN)(
    **{k: v for k, v in _mask_rcnn.items() if k != "_target_"},
    **{k: v for k, v in _panoptic.items() if k.startswith(("sem_seg_head", "combine_", "instance_loss"))},
)
model.sem_seg_head.update(num_classes=4, conv_dims=64, norm="GN")
model.combine_stuff_area_thresh = 256

dataloader.train.mapper.image_format = "${model.input_format}"
evaluator = panoptic_evaluators("shapes_panoptic_val")
