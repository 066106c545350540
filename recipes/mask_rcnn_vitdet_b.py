"""ViTDet Mask R-CNN, ViT-B, on COCO: Detectron2's mask_rcnn_vitdet_b_100ep.

ViT-B/16 + simple feature pyramid (`common/models/mask_rcnn_vitdet`), large-scale jitter at 1024²
(`coco_lsj`, 64 images per batch), AdamW lr 1e-4, weight decay 0.1 (none on norms and the position
embeddings), layer-wise lr decay 0.7 over the 12 blocks, drop path 0.1, 100 epochs = 184,375
iterations with steps at 163,889 and 177,546 and a 250-iteration warmup.

Start from MAE's ImageNet ViT-B (Detectron2's ``ImageNetPretrained/MAE/mae_pretrain_vit_base.pth``):
``model.weights=/path/to/mae_pretrain_vit_base.pth``, and train on 8 GPUs: ``trainer.gpus=8``.
"""
from detrun.config import L
from detrun.engine.optim import vit_layer_decay

from .common.data.coco import coco_lsj as dataloader
from .common.evaluation import evaluator
from .common.models.mask_rcnn_vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.mapper.image_format = "${model.input_format}"
evaluator.dataset_name = "coco_2017_val"

optimizer.lr = 1e-4
optimizer.params.lr_factor = L(vit_layer_decay)(num_layers="${model.backbone.net.depth}", rate=0.7)
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}

# 100 epochs = 184375 iterations x 64 images / 118k images.
trainer.max_iter = 184375
lr_scheduler.milestones = [163889 / 184375, 177546 / 184375]
lr_scheduler.warmup_length = 250 / 184375
lr_scheduler.warmup_factor = 0.001
trainer.amp = "auto"  # bf16 where the device computes it natively (Detectron2: fp16 AMP)
trainer.checkpoint_period = 5000
