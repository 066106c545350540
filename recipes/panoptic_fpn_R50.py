"""Panoptic FPN R50-FPN on COCO panoptic, Detectron2's 1x schedule (its panoptic_fpn_R_50_1x).

Data: ``coco_2017_{train,val}_panoptic`` under ``$DETRUN_DATASETS/coco`` (images, instances and
panoptic annotations; the semantic maps are derived on first use). Start from MSRA's ImageNet
ResNet-50 as Detectron2 does: ``model.weights=/path/to/R-50.pkl``, and train on 8 GPUs.
Evaluation: box/mask AP, mIoU of the semantic head and PQ.
"""
from .common.data.coco_panoptic import dataloader
from .common.evaluation import panoptic_evaluators
from .common.models.panoptic_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
evaluator = panoptic_evaluators("coco_2017_val_panoptic")
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
