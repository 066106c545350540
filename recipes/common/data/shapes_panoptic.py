"""Loaders for the panoptic shapes set (things: circle, square, triangle; stuff: stripes, checker,
noise; see `detrun.data.datasets.shapes_panoptic`).

`shapes`' loaders with the panoptic sets in place of the plain ones (same generation parameters,
the val set copying them from the train set); the mapper also reads each image's label map in
training.
"""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import shapes_panoptic_dataset

from .shapes import dataloader as _shapes

dataloader = OmegaConf.create()
for _split, _name, _images, _seed in (("train", "shapes_panoptic_train", 1000, 10), ("test", "shapes_panoptic_val", 100, 11)):
    _loader = OmegaConf.to_container(_shapes[_split])  # interpolations kept as written
    _dataset = {k: v for k, v in _loader.pop("dataset").items() if k != "_target_"}
    _dataset.update(name=_name, num_images=_images, seed=_seed)
    dataloader[_split] = _loader
    dataloader[_split].dataset = L(shapes_panoptic_dataset)(**_dataset)
