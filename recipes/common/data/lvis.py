"""Loaders for LVIS v1 instances (``lvis_v1_{train,val}``: ``$DETRUN_DATASETS/lvis/lvis_v1_*.json`` and
COCO 2017's images under ``$DETRUN_DATASETS/coco``).

COCO's augmentations, plus Detectron2's repeat-factor sampling for LVIS's long tail: an image is
repeated max over its classes of max(1, sqrt(0.001 / f)) times per epoch, f the fraction of
training images showing the class (`detrun.data.RepeatFactorTrainingSampler`).
"""
from detrun.config import L
from detrun.data import get_dataset

from .coco import dataloader

dataloader.train.dataset = L(get_dataset)(names="lvis_v1_train", on_error="raise")
dataloader.train.repeat_threshold = 0.001
dataloader.test.dataset = L(get_dataset)(names="lvis_v1_val")
