"""Loaders for the panoptic shapes set (things: circle, square, triangle; stuff: stripes, checker,
noise; see `detrun.data.datasets.shapes_panoptic`).

As `shapes`: the generation parameters are the train node's ``dataset`` arguments and the val
set copies them; the mapper reads each image's label map (``use_sem_seg``: in training).
"""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import DatasetMapper, build_test_loader, build_train_loader, shapes_panoptic_dataset
from detrun.data.transforms import RandomFlip

dataloader = OmegaConf.create()

dataloader.train = L(build_train_loader)(
    dataset=L(shapes_panoptic_dataset)(
        name="shapes_panoptic_train",
        num_images=1000,
        seed=10,
        image_size=192,
        min_objects=2,
        max_objects=6,
        min_size=16,
        max_size=64,
        occlusion_prob=0.3,
        max_occluded_fraction=0.4,
    ),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[L(RandomFlip)(horizontal=True)],
        image_format="RGB",
        use_instance_mask=True,
        mask_format="polygon",
    ),
    total_batch_size=4,
    num_workers=0,
    aspect_ratio_grouping=False,
    seed=0,
)

_shared = ("image_size", "min_objects", "max_objects", "min_size", "max_size", "occlusion_prob", "max_occluded_fraction")
dataloader.test = L(build_test_loader)(
    dataset=L(shapes_panoptic_dataset)(name="shapes_panoptic_val", num_images=100, seed=11,
                                       **{k: f"${{oc.select:...train.dataset.{k},null}}" for k in _shared}),
    mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=0,
)
