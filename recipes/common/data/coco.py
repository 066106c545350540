"""Loaders for COCO 2017 instances (images and annotations under ``$DETRUN_DATASETS/coco``).

Training: multi-scale short side 640-800 (long side <= 1333) + horizontal flip, as in Detectron2's
standard Mask R-CNN schedules. ``coco_lsj`` below is the large-scale-jitter variant (1024² crops).
For keypoints: ``dataset.names="keypoints_coco_2017_train"``, ``mapper.use_keypoint=True`` and set
the flip's ``keypoint_flip_indices`` from ``MetadataCatalog.get(name).keypoint_flip_map``.
"""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import DatasetMapper, build_test_loader, build_train_loader, get_dataset
from detrun.data.transforms import FixedSizeCrop, RandomFlip, ResizeScale, ResizeShortestEdge

dataloader = OmegaConf.create()

dataloader.train = L(build_train_loader)(
    dataset=L(get_dataset)(names="coco_2017_train", on_error="raise"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(ResizeShortestEdge)(short_edge_length=[640, 672, 704, 736, 768, 800], max_size=1333, sample_style="choice"),
            L(RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
        use_instance_mask=True,
        mask_format="polygon",
    ),
    total_batch_size=16,
    num_workers=4,
    aspect_ratio_grouping=True,
    seed=0,
)

dataloader.test = L(build_test_loader)(
    dataset=L(get_dataset)(names="coco_2017_val"),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(ResizeShortestEdge)(short_edge_length=800, max_size=1333)],
        image_format="${...train.mapper.image_format}",
    ),
    batch_size=1,
    num_workers=4,
)

# Large-scale jitter (Ghiasi et al., "Simple Copy-Paste", 2021), as Detectron2's coco_loader_lsj:
# flip, scale to 0.1-2.0 of 1024², crop to at most 1024² without padding (the model pads every image
# to its 1024² square, `SimpleFeaturePyramid(square_pad=1024)`), 64 images per batch. Boxes come from
# the masks after cropping (a clipped box can be larger than what is left of the object).
coco_lsj = OmegaConf.create({"train": OmegaConf.to_container(dataloader.train), "test": OmegaConf.to_container(dataloader.test)})
coco_lsj.train.mapper.augmentations = [
    L(RandomFlip)(horizontal=True),
    L(ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=1024, target_width=1024),
    L(FixedSizeCrop)(crop_size=[1024, 1024], pad=False),
]
coco_lsj.train.mapper.recompute_boxes = True
coco_lsj.train.total_batch_size = 64
coco_lsj.test.mapper.augmentations = [L(ResizeShortestEdge)(short_edge_length=1024, max_size=1024)]
