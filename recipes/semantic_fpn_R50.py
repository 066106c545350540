"""Semantic FPN R50-FPN on COCO's semantic maps ("things" + 53 stuff classes, from the panoptic
annotations), Panoptic FPN's 1x schedule and augmentations; evaluated by mIoU.

Start from MSRA's ImageNet ResNet-50: ``model.weights=/path/to/R-50.pkl``; train on 8 GPUs.
"""
from detrun.config import L
from detrun.evaluation import SemSegEvaluator

from .common.data.coco_panoptic import dataloader
from .common.models.semantic_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
dataloader.train.mapper.use_instance_mask = False  # the semantic model reads only the label maps
evaluator = L(SemSegEvaluator)(dataset_name="coco_2017_val_panoptic")
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
