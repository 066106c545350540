"""Loaders for COCO 2017 panoptic in the "separated" layout (``coco_2017_{train,val}_panoptic``):
instances from ``instances_*.json``, semantic maps derived once from the panoptic PNGs (see
`detrun.data.datasets.coco_panoptic`). Same augmentations as the instance loaders; the mapper
also reads and transforms each image's label map."""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import get_dataset

from .coco import dataloader as _coco

dataloader = OmegaConf.create({"train": OmegaConf.to_container(_coco.train), "test": OmegaConf.to_container(_coco.test)})
dataloader.train.dataset = L(get_dataset)(names="coco_2017_train_panoptic", on_error="raise")
dataloader.test.dataset = L(get_dataset)(names="coco_2017_val_panoptic")
