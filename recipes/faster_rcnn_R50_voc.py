"""Faster R-CNN R50-FPN on Pascal VOC, Detectron2's PascalVOC-Detection/faster_rcnn_R_50_FPN:
20 classes, VOC2007+2012 trainval, 18k iterations at 16 images, lr 0.02, steps at 12k/16k,
scored on VOC2007 test with the devkit's AP (11-point for 2007; AP over IoU 0.50:0.95 too).

Data under ``$DETRUN_DATASETS/VOC2007`` and ``VOC2012``. Start from MSRA's ImageNet ResNet-50 as
Detectron2 does: ``model.weights=/path/to/R-50.pkl``, and train on 8 GPUs: ``trainer.gpus=8``.
"""
from detrun.config import L
from detrun.evaluation import PascalVOCDetectionEvaluator

from .common.data.voc import dataloader
from .common.models.faster_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

model.roi_heads.num_classes = 20
dataloader.train.mapper.image_format = "${model.input_format}"
evaluator = L(PascalVOCDetectionEvaluator)(dataset_name="voc_2007_test")
trainer.max_iter = 18000
trainer.checkpoint_period = 2000
# Milestones 12k and 16k of 18k; Detectron2's 1000 warmup iterations.
lr_scheduler.milestones = [12000 / 18000, 16000 / 18000]
lr_scheduler.warmup_length = 1000 / 18000
