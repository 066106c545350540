"""Loaders for Pascal VOC (``$DETRUN_DATASETS/VOC2007`` and ``VOC2012``, the devkit layout), as
Detectron2's PascalVOC-Detection configs: train on VOC2007+2012 trainval with the short side drawn
from 480..800 (step 32, long side <= 1333) and flips, test on VOC2007 test at 800. No masks."""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import get_dataset
from detrun.data.transforms import ResizeShortestEdge

from .coco import dataloader as _coco

dataloader = OmegaConf.create({"train": OmegaConf.to_container(_coco.train), "test": OmegaConf.to_container(_coco.test)})
dataloader.train.dataset = L(get_dataset)(names=["voc_2007_trainval", "voc_2012_trainval"], on_error="raise")
dataloader.train.mapper.augmentations[0] = L(ResizeShortestEdge)(
    short_edge_length=list(range(480, 801, 32)), max_size=1333, sample_style="choice")
dataloader.train.mapper.use_instance_mask = False
dataloader.test.dataset = L(get_dataset)(names="voc_2007_test")
