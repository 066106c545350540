import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from detrun.data import (
    DataError,
    DatasetMapper,
    annotations_to_instances,
    filter_empty_instances,
    load_coco_json,
    transform_instance_annotations,
)
from detrun.data.transforms import CropTransform, RandomFlip, ResizeShortestEdge
from detrun.structures import BitMasks, Instances, Keypoints, PolygonMasks


@pytest.fixture
def records(coco_dir):
    return {r["image_id"]: r for r in load_coco_json(coco_dir[0], coco_dir[1])}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools
def test_rasterized_masks_match_pycocotools_ann_to_mask(records, coco_dir):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_dir[0]))
    for image_id, record in records.items():
        size = (record["height"], record["width"])
        annos = [a for a in record["annotations"] if not a["iscrowd"]]
        inst = annotations_to_instances(annos, size, mask_format="bitmask")
        refs = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id)) if not a["iscrowd"]]
        assert isinstance(inst.gt_masks, BitMasks) and len(inst) == len(refs)
        for mask, ref in zip(inst.gt_masks.tensor, refs):
            assert np.array_equal(mask.numpy(), coco.annToMask(ref).astype(bool))


def test_mapper_output_contract(records):
    mapper = DatasetMapper(is_train=True, augmentations=[ResizeShortestEdge(short_edge_length=80, max_size=200)],
                           use_keypoint=True)
    record = records[10]
    out = mapper(record, np.random.default_rng(0))
    assert set(out) == {"image", "instances", "height", "width", "image_id", "file_name"}
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 80, 120)
    assert (out["height"], out["width"], out["image_id"]) == (40, 60, 10)
    inst = out["instances"]
    assert isinstance(inst, Instances) and inst.image_size == (80, 120)
    assert len(inst) == 2  # the crowd region is not a training target
    assert inst.gt_classes.tolist() == [2, 0]
    torch.testing.assert_close(inst.gt_boxes.tensor[0], torch.tensor([5.0, 6, 45, 37]))
    assert isinstance(inst.gt_masks, PolygonMasks) and isinstance(inst.gt_keypoints, Keypoints)
    torch.testing.assert_close(inst.gt_keypoints.tensor[0, 0], torch.tensor([11.0, 13, 2]))
    # the image is the file's pixels, resized
    raw = np.asarray(Image.open(record["file_name"]).convert("RGB").resize((120, 80), Image.BILINEAR))
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), raw)
    test_out = DatasetMapper(is_train=False)(record)
    assert "instances" not in test_out and test_out["image"].shape == (3, 40, 60)


def test_mapper_flip_with_keypoint_flip_map(records):
    mapper = DatasetMapper(is_train=True, augmentations=[RandomFlip(prob=1.0, keypoint_flip_indices=[1, 0, 2])],
                           use_keypoint=True, image_format="BGR")
    out = mapper(records[10])
    kp = out["instances"].gt_keypoints.tensor[0]
    # original left_eye (5.5, 6.5), right_eye (15.5, 6.5): after the flip, left_eye is the mirrored right one
    torch.testing.assert_close(kp[0], torch.tensor([60 - 15.5, 6.5, 2]))
    torch.testing.assert_close(kp[1], torch.tensor([60 - 5.5, 6.5, 2]))
    raw = np.asarray(Image.open(records[10]["file_name"]).convert("RGB"))
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), raw[:, ::-1, ::-1])


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
def test_crop_drops_objects_that_leave_the_image(records, mask_format):
    annos = [a for a in records[10]["annotations"] if not a["iscrowd"]]

    def instances(crop, image_size):
        moved = [transform_instance_annotations(a, crop, image_size) for a in annos]
        return filter_empty_instances(annotations_to_instances(moved, image_size, mask_format, use_keypoints=True))

    # window x in [0, 25): keeps object 1 (x 2.5..22.5), cuts away object 2 (x 30..42)
    inst = instances(CropTransform(x0=0, y0=0, w=25, h=40), (40, 25))
    assert len(inst) == 1 and inst.gt_classes.tolist() == [2]
    # partially cropped: box clipped to the window
    inst = instances(CropTransform(x0=10, y0=0, w=26, h=40), (40, 26))
    assert inst.gt_classes.tolist() == [2, 0]
    boxes = inst.gt_boxes.tensor
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 26
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 3, 12.5, 18.5]), atol=0.5, rtol=0)
    # keypoints that left the window are marked not visible (x, y, v = 0)
    kp = inst.gt_keypoints.tensor[0]
    assert kp[0].tolist() == [0, 0, 0] and kp[1, 2] == 2


def test_bad_images_raise_naming_the_file(records, tmp_path):
    mapper = DatasetMapper(is_train=True)
    missing = dict(records[4], file_name=str(tmp_path / "gone.png"))
    with pytest.raises(DataError, match="gone.png.*does not exist"):
        mapper(missing)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="corrupt.png.*can't be decoded"):
        mapper(dict(records[4], file_name=str(corrupt)))
    with pytest.raises(DataError, match="is 30x50 pixels but its annotation says 31x50"):
        mapper(dict(records[4], width=31))


def test_image_without_objects_keeps_every_field(records):
    out = DatasetMapper(is_train=True, use_keypoint=True)(records[7])  # c.png has no annotations
    inst = out["instances"]
    assert len(inst) == 0 and inst.gt_boxes.tensor.shape == (0, 4) and len(inst.gt_masks) == 0
    assert inst.gt_keypoints.tensor.shape[0] == 0
    no_kp = [dict(a, keypoints=None) for a in records[4]["annotations"]]
    with pytest.raises(DataError, match="annotation id 4 has no keypoints"):
        annotations_to_instances(no_kp, (50, 30), use_keypoints=True)


def test_mapper_recomputes_boxes_from_cropped_masks(records):
    # a fixed transform in the augmentation list (as Detectron2 allows): window x in [10, 36)
    mapper = DatasetMapper(is_train=True, augmentations=[CropTransform(x0=10, y0=0, w=26, h=40)],
                           recompute_boxes=True, use_keypoint=True)
    inst = mapper(records[10], np.random.default_rng(0))["instances"]
    assert inst.gt_classes.tolist() == [2, 0]
    # object 1 (x 2.5..22.5) keeps x 0..12.5: its box shrinks with what is left of its polygon
    torch.testing.assert_close(inst.gt_boxes.tensor[0], torch.tensor([0.0, 3, 12.5, 18.5]))
    assert inst.gt_keypoints.tensor[0, 0].tolist() == [0, 0, 0]  # left the window


def test_mapper_grey_images_resize(records):
    mapper = DatasetMapper(is_train=True, augmentations=[ResizeShortestEdge(short_edge_length=80, max_size=200)],
                           image_format="L")
    out = mapper(records[10], np.random.default_rng(0))
    assert out["image"].shape == (1, 80, 120) and len(out["instances"]) == 2
