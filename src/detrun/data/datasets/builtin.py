"""Built-in data set names: COCO 2017 (under ``$DETRUN_DATASETS/coco``), LVIS v1, Pascal VOC
2007/2012 (``VOC2007``, ``VOC2012``), ADE20K (``ADEChallengeData2016``) and the synthetic shapes."""
from __future__ import annotations

from . import coco_person
from .ade20k import register_ade20k_sem_seg
from .cityscapes import register_cityscapes
from .coco import register_coco_instances
from .coco_panoptic import register_coco_panoptic
from .lvis import register_lvis_instances
from .pascal_voc import register_pascal_voc
from .paths import DatasetPath, not_found_hint
from .shapes import register_builtin_shapes
from .shapes_panoptic import register_builtin_shapes_panoptic

# name → (image folder, annotation file), relative to $DETRUN_DATASETS; the standard COCO download layout.
COCO_2017 = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "keypoints_coco_2017_train": ("coco/train2017", "coco/annotations/person_keypoints_train2017.json"),
    "keypoints_coco_2017_val": ("coco/val2017", "coco/annotations/person_keypoints_val2017.json"),
}
# Panoptic FPN's "separated" layout (Detectron2's coco_2017_*_panoptic_separated): the instances JSON for
# things, the panoptic PNGs for stuff, semantic maps derived from them once into panoptic_semseg_*.
COCO_2017_PANOPTIC = {
    f"coco_2017_{split}_panoptic": dict(
        image_root=f"coco/{split}2017", json_file=f"coco/annotations/instances_{split}2017.json",
        panoptic_json=f"coco/annotations/panoptic_{split}2017.json", panoptic_root=f"coco/panoptic_{split}2017",
        sem_seg_root=f"coco/panoptic_semseg_{split}2017")
    for split in ("train", "val")
}
# name → (task, image folder, gtFine folder): the Cityscapes download layout (leftImg8bit/, gtFine/).
CITYSCAPES = {
    f"cityscapes_fine_{task}_{split}": (task, f"cityscapes/leftImg8bit/{split}", f"cityscapes/gtFine/{split}")
    for task in ("instance_seg", "sem_seg") for split in ("train", "val", "test")
}

# LVIS v1: name → annotation file; images are COCO 2017's (each entry's coco_url names train2017/ or val2017/).
LVIS_V1 = {f"lvis_v1_{split}": f"lvis/lvis_v1_{split}.json" for split in ("train", "val")}

# Pascal VOC image sets, each under $DETRUN_DATASETS/VOC<year> (the devkit's layout).
VOC_SPLITS = {2007: ("train", "val", "trainval", "test"), 2012: ("train", "val", "trainval")}
# ADE20K SceneParsing (150 classes): $DETRUN_DATASETS/ADEChallengeData2016, the download layout.
ADE20K_ROOT = "ADEChallengeData2016"


def register_all_builtin() -> None:
    """Register every built-in name (cheap: nothing is read until a data set is used)."""
    for name, (image_root, json_file) in COCO_2017.items():
        metadata = coco_person.METADATA if name.startswith("keypoints_") else None
        register_coco_instances(name, DatasetPath(json_file), DatasetPath(image_root), overwrite=True,
                                metadata=metadata, not_found_hint=not_found_hint(f"Data set '{name}'"))
    for name, paths in COCO_2017_PANOPTIC.items():
        register_coco_panoptic(name, **{k: DatasetPath(v) for k, v in paths.items()}, overwrite=True,
                               not_found_hint=not_found_hint(f"Data set '{name}'"))
    for name, json_file in LVIS_V1.items():
        hint = not_found_hint(f"Data set '{name}' ({json_file}, images in coco/train2017 and coco/val2017)",
                              folder="lvis/ and coco/",
                              register="detrun.data.register_lvis_instances(name, json_file, image_root)")
        register_lvis_instances(name, DatasetPath(json_file), DatasetPath("coco"), overwrite=True, not_found_hint=hint)
    for year, splits in VOC_SPLITS.items():
        for split in splits:
            name = f"voc_{year}_{split}"
            hint = not_found_hint(f"Data set '{name}'", folder=f"VOC{year}/",
                                  register="detrun.data.register_pascal_voc(name, dirname, split, year)")
            register_pascal_voc(name, DatasetPath(f"VOC{year}"), split, year, overwrite=True, not_found_hint=hint)
    for name, (task, image_dir, gt_dir) in CITYSCAPES.items():
        hint = not_found_hint(f"Data set '{name}'", folder="cityscapes/",
                              register="detrun.data.register_cityscapes(name, task=..., image_dir=..., gt_dir=...)")
        register_cityscapes(name, task=task, image_dir=DatasetPath(image_dir), gt_dir=DatasetPath(gt_dir),
                            overwrite=True, not_found_hint=hint)
    for split in ("train", "val"):
        name = f"ade20k_sem_seg_{split}"
        hint = not_found_hint(f"Data set '{name}'", folder=f"{ADE20K_ROOT}/",
                              register="detrun.data.register_ade20k_sem_seg(name, root, split)")
        register_ade20k_sem_seg(name, DatasetPath(ADE20K_ROOT), split, overwrite=True, not_found_hint=hint)
    register_builtin_shapes()
    register_builtin_shapes_panoptic()
