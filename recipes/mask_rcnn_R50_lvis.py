"""Mask R-CNN R50-FPN on LVIS v1, Detectron2's LVISv1 mask_rcnn_R_50_FPN_1x: 1203 classes,
repeat-factor sampling (threshold 0.001), 180k iterations at 16 images (lr 0.02, steps at 120k/160k),
and at test time up to 300 detections per image down to score 0.0001, scored by LVIS's federated AP.

Data: ``lvis_v1_{train,val}`` (see ``recipes/common/data/lvis.py``). Evaluation needs
``pip install 'detrun[lvis]'``. Start from MSRA's ImageNet ResNet-50 as Detectron2 does:
``model.weights=/path/to/R-50.pkl``, and train on 8 GPUs: ``trainer.gpus=8``.
"""
from detrun.config import L
from detrun.evaluation import LVISEvaluator

from .common.data.lvis import dataloader
from .common.models.mask_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
model.roi_heads.num_classes = 1203
model.roi_heads.box_predictor.test_score_thresh = 0.0001
model.roi_heads.box_predictor.test_topk_per_image = 300
evaluator = L(LVISEvaluator)(dataset_name="lvis_v1_val", max_dets_per_image=300)
trainer.max_iter = 180000
trainer.checkpoint_period = 5000
lr_scheduler.warmup_length = 1000 / 180000  # Detectron2's 1000 warmup iterations; milestones stay 2/3, 8/9
