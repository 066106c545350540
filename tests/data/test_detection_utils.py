"""transform_instance_annotations / annotations_to_instances / filter_empty_instances on hand-made annotations."""
import copy

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detrun.data import DataError, annotations_to_instances, filter_empty_instances, transform_instance_annotations
from detrun.data.transforms import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    RotationTransform,
    TransformList,
    VFlipTransform,
)
from detrun.structures import BitMasks, BoxMode, PolygonMasks, polygons_to_bitmask

H, W = 40, 60
# keypoints: left (5, 4), right (25, 6), nose (15, 30) unlabelled
ANNOTATION = {"id": 7, "category_id": 2, "bbox": [5.0, 4, 20, 26], "bbox_mode": BoxMode.XYWH_ABS,
              "segmentation": [[5.0, 4, 25, 6, 15, 30]], "keypoints": [5, 4, 2, 25, 6, 1, 15, 30, 0]}
SWAP = [1, 0, 2]


def rle(mask, compressed=True):
    if compressed:
        return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    runs, flat, value = [], mask.T.reshape(-1), False  # column-major runs, starting with zeros
    while flat.size:
        n = int(np.argmax(flat != value)) if (flat != value).any() else flat.size
        runs.append(n)
        flat, value = flat[n:], not value
    return {"size": list(mask.shape), "counts": runs}


def test_box_polygon_and_keypoints_follow_resize_and_flip():
    t = TransformList([ResizeTransform(h=H, w=W, new_h=80, new_w=120), HFlipTransform(width=120)])
    original = copy.deepcopy(ANNOTATION)
    out = transform_instance_annotations(ANNOTATION, t, (80, 120), keypoint_hflip_indices=SWAP)
    assert ANNOTATION == original  # a new dict; records are reused every epoch
    assert out["bbox_mode"] == BoxMode.XYXY_ABS and out["category_id"] == 2
    np.testing.assert_allclose(out["bbox"], [120 - 50, 8, 120 - 10, 60])
    np.testing.assert_allclose(out["segmentation"][0], [110, 8, 70, 12, 90, 60])
    # left/right swapped names; the unlabelled nose is (0, 0, 0) (COCO)
    np.testing.assert_allclose(out["keypoints"], [[120 - 50, 12, 1], [120 - 10, 8, 2], [0, 0, 0]])


def test_keypoint_mirroring_counts_flips():
    twice = TransformList([HFlipTransform(width=W), VFlipTransform(height=H)])  # mirrored twice: names stay
    out = transform_instance_annotations(ANNOTATION, twice, (H, W), keypoint_hflip_indices=SWAP)
    np.testing.assert_allclose(out["keypoints"][:2], [[W - 5, H - 4, 2], [W - 25, H - 6, 1]])
    once = VFlipTransform(height=H)  # a vertical mirror swaps left and right too (Detectron2 ignores it)
    np.testing.assert_allclose(transform_instance_annotations(ANNOTATION, once, (H, W), keypoint_hflip_indices=SWAP)
                               ["keypoints"][0], [25, H - 6, 1])
    carried = HFlipTransform(width=W, keypoint_flip_indices=SWAP)  # RandomFlip(keypoint_flip_indices=...)
    np.testing.assert_allclose(transform_instance_annotations(ANNOTATION, carried, (H, W))["keypoints"][0], [W - 25, 6, 1])
    with pytest.raises(ValueError, match="annotation id 7: the image was mirrored but no keypoint flip indices"):
        transform_instance_annotations(ANNOTATION, HFlipTransform(width=W), (H, W))
    with pytest.raises(ValueError, match="2 entries for 3 keypoints"):
        transform_instance_annotations(ANNOTATION, HFlipTransform(width=W), (H, W), keypoint_hflip_indices=[1, 0])
    # without keypoints, nothing to mirror: no error
    transform_instance_annotations(dict(ANNOTATION, keypoints=None), HFlipTransform(width=W), (H, W))


def test_crop_clips_box_and_hides_keypoints_outside():
    out = transform_instance_annotations(ANNOTATION, CropTransform(x0=10, y0=0, w=20, h=H), (H, 20))
    np.testing.assert_allclose(out["bbox"], [0, 4, 15, 30])  # x 5..25 shifted by -10, clipped to [0, 20]
    np.testing.assert_allclose(out["keypoints"], [[0, 0, 0], [15, 6, 1], [0, 0, 0]])
    poly = out["segmentation"][0].reshape(-1, 2)
    assert poly[:, 0].min() >= 0 and poly[:, 0].max() <= 20  # clipped, not just moved


@pytest.mark.parametrize("compressed", [True, False], ids=["rle", "uncompressed_rle"])
def test_rle_segmentation_becomes_a_transformed_bitmap(compressed):
    mask = polygons_to_bitmask(ANNOTATION["segmentation"], H, W)
    t = RotationTransform(h=H, w=W, angle=90)
    out = transform_instance_annotations(dict(ANNOTATION, segmentation=rle(mask, compressed)), t, (W, H))
    assert out["segmentation"].dtype == bool
    np.testing.assert_array_equal(out["segmentation"], np.rot90(mask))


def test_annotations_to_instances_fields():
    annos = [ANNOTATION, dict(ANNOTATION, id=8, category_id=0, bbox=[30.0, 10, 55, 35], bbox_mode=BoxMode.XYXY_ABS)]
    inst = annotations_to_instances(annos, (H, W))
    assert inst.image_size == (H, W) and inst.gt_classes.tolist() == [2, 0]
    torch.testing.assert_close(inst.gt_boxes.tensor, torch.tensor([[5.0, 4, 25, 30], [30, 10, 55, 35]]))
    assert isinstance(inst.gt_masks, PolygonMasks) and inst.gt_keypoints.tensor.shape == (2, 3, 3)
    bitmasks = annotations_to_instances(annos, (H, W), mask_format="bitmask").gt_masks
    assert isinstance(bitmasks, BitMasks)
    np.testing.assert_array_equal(bitmasks.tensor[0].numpy(), polygons_to_bitmask(ANNOTATION["segmentation"], H, W))
    # an RLE among polygons makes bitmaps (Detectron2 raises for mask_format="polygon")
    mixed = [dict(ANNOTATION, segmentation=rle(np.ones((H, W), bool))), ANNOTATION]
    assert isinstance(annotations_to_instances(mixed, (H, W)).gt_masks, BitMasks)
    boxes_only = annotations_to_instances(annos, (H, W), mask_format=None, use_keypoints=False)
    assert not boxes_only.has("gt_masks") and not boxes_only.has("gt_keypoints")


def test_annotations_to_instances_refuses_missing_fields():
    with pytest.raises(DataError, match="annotation id 7 has no segmentation.*mask_format=None"):
        annotations_to_instances([dict(ANNOTATION, segmentation=None)], (H, W))
    with pytest.raises(DataError, match="annotation id 7 has no keypoints"):
        annotations_to_instances([dict(ANNOTATION, keypoints=None)], (H, W), use_keypoints=True)
    with pytest.raises(DataError, match="annotation id 7 has no keypoints"):  # others have them: can't stack
        annotations_to_instances([dict(ANNOTATION, keypoints=None), dict(ANNOTATION, id=8)], (H, W))
    assert not annotations_to_instances([dict(ANNOTATION, keypoints=None)], (H, W)).has("gt_keypoints")
    with pytest.raises(DataError, match="mask is 30x20 pixels but the image is 60x40"):
        annotations_to_instances([dict(ANNOTATION, segmentation=np.ones((20, 30), bool))], (H, W))


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
def test_image_without_objects_keeps_fields(mask_format):
    inst = annotations_to_instances([], (H, W), mask_format, use_keypoints=True)
    assert len(inst) == 0 and inst.gt_boxes.tensor.shape == (0, 4) and len(inst.gt_masks) == 0
    assert inst.gt_keypoints.tensor.shape == (0, 0, 3)


def test_filter_empty_instances():
    good = transform_instance_annotations(ANNOTATION, NoOpTransform(), (H, W))
    no_box = dict(good, bbox=np.array([5.0, 4, 5, 30]))  # zero width
    no_mask = transform_instance_annotations(ANNOTATION, CropTransform(x0=0, y0=0, w=W, h=H), (H, W))
    no_mask["segmentation"] = []  # every polygon cropped away
    inst = annotations_to_instances([good, no_box, no_mask], (H, W))
    inst.gt_classes = torch.tensor([0, 1, 2])
    assert filter_empty_instances(inst).gt_classes.tolist() == [0]
    assert filter_empty_instances(inst, by_box=False).gt_classes.tolist() == [0, 1]
    assert filter_empty_instances(inst, by_mask=False).gt_classes.tolist() == [0, 2]
