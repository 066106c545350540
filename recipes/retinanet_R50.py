"""RetinaNet R50-FPN on COCO, Detectron2's 1x schedule (its retinanet_R_50_FPN_1x: 90k iterations at
16 images, lr 0.01, steps at 60k/80k).

Start from MSRA's ImageNet ResNet-50 as Detectron2 does: ``model.weights=/path/to/R-50.pkl``, and
train on 8 GPUs: ``trainer.gpus=8``.
"""
from .common.data.coco import dataloader
from .common.evaluation import evaluator
from .common.models.retinanet import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
dataloader.train.mapper.use_instance_mask = False
evaluator.dataset_name = "coco_2017_val"
optimizer.lr = 0.01
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
