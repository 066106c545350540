"""Loaders for Cityscapes fine instances (``$DETRUN_DATASETS/cityscapes``, the gtFine layout), as
Detectron2's Cityscapes configs: train with the short side drawn from 800..1024 (step 32, long
side <= 2048) and flips, test at 1024. The 8 classes with instances; polygons as masks."""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import get_dataset
from detrun.data.transforms import ResizeShortestEdge

from .coco import dataloader as _coco

dataloader = OmegaConf.create({"train": OmegaConf.to_container(_coco.train), "test": OmegaConf.to_container(_coco.test)})
dataloader.train.dataset = L(get_dataset)(names="cityscapes_fine_instance_seg_train", on_error="raise")
dataloader.train.mapper.augmentations[0] = L(ResizeShortestEdge)(
    short_edge_length=list(range(800, 1025, 32)), max_size=2048, sample_style="choice")
dataloader.test.dataset = L(get_dataset)(names="cityscapes_fine_instance_seg_val")
dataloader.test.mapper.augmentations = [L(ResizeShortestEdge)(short_edge_length=1024, max_size=2048)]
