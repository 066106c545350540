"""Mask R-CNN for the synthetic shapes set, trained from scratch on a CPU in minutes (the default recipe).

A narrow ResNet-18 (32-channel stem) with trainable batch norm, a 64-channel FPN, anchors of
16-256 px for objects of 16-64 px in 192 px images, fewer RPN/ROI samples and lighter heads
than the COCO recipes. Everything else is `mask_rcnn_R50`'s Detectron2 defaults.
"""
from .common.data.shapes import dataloader
from .common.evaluation import evaluator
from .common.models.mask_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

model.backbone.bottom_up.update(depth=18, width=32, norm="BN", freeze_at=0, stride_in_1x1=False)
model.backbone.out_channels = 64
model.pixel_mean = [123.675, 116.28, 103.53]  # ImageNet RGB statistics: any sane scale works from scratch
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.proposal_generator.batch_size_per_image = 128
model.proposal_generator.pre_nms_topk = [1000, 500]
model.proposal_generator.post_nms_topk = [500, 250]

model.roi_heads.num_classes = 3
model.roi_heads.batch_size_per_image = 128
model.roi_heads.box_head.fc_dims = [256, 256]
model.roi_heads.box_predictor.test_topk_per_image = 50
model.roi_heads.branches.mask.head.conv_dims = [64, 64, 64, 64, 64]

dataloader.train.mapper.image_format = "${model.input_format}"

optimizer.lr = 0.02
# From scratch at lr 0.02 and batch 4, a 7-step warmup (the 1x schedule's 1.1 %) diverged by step 40;
# 10 % holds (experiments/shapes_main_job.md). 700 steps fit the 10-minute budget on 2 cores.
lr_scheduler.warmup_length = 0.1
trainer.max_iter = 700
trainer.checkpoint_period = 350
