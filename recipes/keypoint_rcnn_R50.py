"""Keypoint R-CNN R50-FPN on COCO person keypoints, Detectron2's 1x schedule (its keypoint_rcnn_R_50_FPN_1x).

Start from MSRA's ImageNet ResNet-50 as Detectron2 does: ``model.weights=/path/to/R-50.pkl``, and
train on 8 GPUs: ``trainer.gpus=8``. Data: ``keypoints_coco_2017_{train,val}`` under
``$DETRUN_DATASETS/coco`` (person_keypoints_*.json); horizontal flips swap left and right keypoints.
"""
from detrun.data.datasets.coco_person import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES
from detrun.data.transforms import keypoint_flip_indices

from .common.data.coco import dataloader
from .common.evaluation import evaluator
from .common.models.keypoint_rcnn_fpn import model
from .common.optim import SGD as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

dataloader.train.dataset.names = "keypoints_coco_2017_train"
dataloader.train.mapper.image_format = "${model.input_format}"
dataloader.train.mapper.use_instance_mask = False
dataloader.train.mapper.use_keypoint = True
dataloader.train.mapper.augmentations[-1].keypoint_flip_indices = keypoint_flip_indices(KEYPOINT_NAMES,
                                                                                       KEYPOINT_FLIP_MAP)
dataloader.test.dataset.names = "keypoints_coco_2017_val"
evaluator.dataset_name = "keypoints_coco_2017_val"
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
