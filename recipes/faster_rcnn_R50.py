"""Faster R-CNN R50-FPN on COCO, Detectron2's 1x schedule; start from ``model.weights=/path/to/R-50.pkl``."""
from .common.data.coco import dataloader
from .common.evaluation import evaluator
from .common.models.faster_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
dataloader.train.mapper.use_instance_mask = False
evaluator.dataset_name = "coco_2017_val"
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
