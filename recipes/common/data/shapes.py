"""Loaders for the synthetic shapes set (3 classes: circle, square, triangle; masks and keypoints).

The generation parameters are the train node's ``dataset`` arguments; the val set reads them
through interpolations, so one override changes both splits, e.g.
``dataloader.train.dataset.image_size=256``. Changing any parameter generates a new cached set
under ``$DETRUN_DATASETS/shapes/<hash>/``; same parameters → the cache is reused.
Instantiating a ``shapes_dataset`` node (re)registers its name (shapes_train / shapes_val) with
these parameters, so build the loaders before an evaluator that looks the name up.
For keypoint models set ``dataloader.train.mapper.use_keypoint=True``.
"""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import DatasetMapper, build_test_loader, build_train_loader, shapes_dataset
from detrun.data.datasets.shapes_render import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES
from detrun.data.transforms import RandomFlip, keypoint_flip_indices

dataloader = OmegaConf.create()

dataloader.train = L(build_train_loader)(
    dataset=L(shapes_dataset)(
        name="shapes_train",
        num_images=3000,
        seed=0,
        image_size=192,  # square images, pixels
        min_objects=2,
        max_objects=6,
        min_size=16,  # object width range, pixels
        max_size=64,
        occlusion_prob=0.3,  # chance a new object may overlap earlier ones...
        max_occluded_fraction=0.4,  # ...hiding at most this much of any of them
    ),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(RandomFlip)(horizontal=True, keypoint_flip_indices=keypoint_flip_indices(KEYPOINT_NAMES, KEYPOINT_FLIP_MAP)),
        ],
        image_format="RGB",
        use_instance_mask=True,
        mask_format="polygon",
        use_keypoint=False,
    ),
    total_batch_size=4,
    # ~2 ms of CPU per image (mostly PNG decoding): on 2 cores a worker process would take CPU from the
    # model for little gain (benchmarks/README.md, ## data). Raise it on machines with spare cores.
    num_workers=0,
    aspect_ratio_grouping=False,  # all images are square
    seed=0,
)

_shared = ("image_size", "min_objects", "max_objects", "min_size", "max_size", "occlusion_prob", "max_occluded_fraction")
# oc.select: a recipe that replaces the train set with another kind still resolves (the values are
# then null, and building this val set says to replace it too).
dataloader.test = L(build_test_loader)(
    dataset=L(shapes_dataset)(name="shapes_val", num_images=250, seed=1,
                              **{k: f"${{oc.select:...train.dataset.{k},null}}" for k in _shared}),
    mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=0,
)
