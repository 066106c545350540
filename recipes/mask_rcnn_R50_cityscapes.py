"""Mask R-CNN R50-FPN on Cityscapes fine instances, Detectron2's Cityscapes/mask_rcnn_R_50_FPN:
8 classes, 24k iterations at 8 images, lr 0.01, decay by 10 at 18k, evaluation every 8k, scored
with Cityscapes' instance AP / AP50 on ``cityscapes_fine_instance_seg_val``.

The evaluator needs ``pip install 'detrun[cityscapes]'`` (cityscapesscripts). Data under
``$DETRUN_DATASETS/cityscapes``. Start from MSRA's ImageNet ResNet-50 as Detectron2 does:
``model.weights=/path/to/R-50.pkl``, and train on 8 GPUs: ``trainer.gpus=8``.
"""
from detrun.config import L
from detrun.evaluation import CityscapesInstanceEvaluator

from .common.data.cityscapes import dataloader
from .common.models.mask_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

model.roi_heads.num_classes = 8
dataloader.train.mapper.image_format = "${model.input_format}"
dataloader.train.total_batch_size = 8
optimizer.lr = 0.01
evaluator = L(CityscapesInstanceEvaluator)(dataset_name="cityscapes_fine_instance_seg_val")
trainer.max_iter = 24000
trainer.checkpoint_period = 2000
trainer.eval_period = 8000
# One decay at 18k of 24k; Detectron2's 1000 warmup iterations.
lr_scheduler.milestones = [18000 / 24000]
lr_scheduler.warmup_length = 1000 / 24000
