"""Large-scale jitter (flip, `ResizeScale`, `FixedSizeCrop`, as Detectron2's coco_loader_lsj) moves the
image, boxes, polygons, bitmasks and keypoints together: checked against the geometry computed directly
from the drawn flip, scale and crop window."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from detrun.config import instantiate
from detrun.data import DatasetMapper
from detrun.data.transforms import (
    CropTransform,
    FixedSizeCrop,
    HFlipTransform,
    RandomFlip,
    ResizeScale,
    ResizeTransform,
    apply_augmentations,
)
from detrun.structures.masks import polygons_to_bitmask

H, W = 120, 200
TARGET = 128
# Two objects: a square and a triangle, each with 3 keypoints (the third hidden on the triangle).
POLYGONS = [[20.0, 30.0, 80.0, 30.0, 80.0, 90.0, 20.0, 90.0], [120.0, 20.0, 180.0, 100.0, 110.0, 100.0]]
KEYPOINTS = [[25.0, 35.0, 2, 75.0, 35.0, 2, 50.0, 85.0, 2], [120.0, 22.0, 2, 176.0, 98.0, 2, 112.0, 98.0, 1]]
COLORS = [(255, 0, 0), (0, 0, 255)]
FLIP_INDICES = [1, 0, 2]  # keypoints 0 and 1 are a left/right pair


def lsj(pad: bool = False) -> list:
    return [RandomFlip(prob=1.0, keypoint_flip_indices=FLIP_INDICES),
            ResizeScale(min_scale=0.5, max_scale=2.0, target_height=TARGET, target_width=TARGET),
            FixedSizeCrop(crop_size=(TARGET, TARGET), pad=pad)]


@pytest.fixture
def record(tmp_path) -> dict:
    image = Image.new("RGB", (W, H), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for polygon, color in zip(POLYGONS, COLORS):
        draw.polygon(polygon, fill=color)
    image.save(tmp_path / "scene.png")
    annotations = []
    for i, (polygon, kps) in enumerate(zip(POLYGONS, KEYPOINTS)):
        xs, ys = polygon[0::2], polygon[1::2]
        annotations.append({"bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "category_id": i,
                            "segmentation": [polygon], "keypoints": kps, "iscrowd": 0})
    return {"file_name": str(tmp_path / "scene.png"), "height": H, "width": W, "image_id": 1, "annotations": annotations}


def drawn(seed: int, pad: bool = False):
    """The flip width, resize and crop window the augmentations draw with `seed` (as the mapper does)."""
    _, transforms = apply_augmentations(lsj(pad), np.zeros((H, W, 3), np.uint8), np.random.default_rng(seed))
    steps = {type(t): t for t in transforms.transforms}
    flip, resize = steps[HFlipTransform], steps[ResizeTransform]
    crop = steps.get(CropTransform, CropTransform(x0=0, y0=0, w=resize.new_w, h=resize.new_h))
    return flip, resize, crop


def direct(points: np.ndarray, seed: int) -> np.ndarray:
    """x, y [N, 2] through flip, scale and crop, computed by hand."""
    flip, resize, crop = drawn(seed)
    x = (flip.width - points[:, 0]) * resize.new_w / W - crop.x0
    y = points[:, 1] * resize.new_h / H - crop.y0
    return np.stack([x, y], axis=1)


SEEDS = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_keypoints_and_image_move_together(record, seed):
    mapper = DatasetMapper(is_train=True, augmentations=lsj(), use_keypoint=True)
    out = mapper(record, np.random.default_rng(seed))
    _, resize, crop = drawn(seed)
    image = out["image"].permute(1, 2, 0).numpy()
    assert image.shape == (min(resize.new_h, TARGET), min(resize.new_w, TARGET), 3) == (crop.h, crop.w, 3)
    instances = out["instances"]
    kept = [i for i in range(2) if i in instances.gt_classes.tolist()]
    for row, i in enumerate(kept):
        kps = np.asarray(KEYPOINTS[i], dtype=np.float64).reshape(3, 3)
        expected = direct(kps[:, :2], seed)[FLIP_INDICES]  # mirrored: left and right swap names
        visibility = kps[FLIP_INDICES, 2]
        inside = (expected >= 0).all(1) & (expected[:, 0] <= crop.w) & (expected[:, 1] <= crop.h)
        got = instances.gt_keypoints.tensor[row].numpy()
        np.testing.assert_allclose(got[inside, :2], expected[inside], atol=1e-4)
        np.testing.assert_array_equal(got[inside, 2], visibility[inside])
        assert (got[~inside] == 0).all()  # outside the crop: unlabelled
        # The image has the object's colour where its (visible, interior) keypoints went.
        if i == 0:  # the square's keypoints lie 5+ px inside it
            for (x, y), ok in zip(expected, inside):
                if ok and 1 <= x < crop.w - 1 and 1 <= y < crop.h - 1:
                    red, green, blue = image[int(y), int(x)].astype(int)
                    assert red > 160 and blue < 100, (x, y, image[int(y), int(x)])


@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_and_masks_move_together(record, seed, mask_format):
    mapper = DatasetMapper(is_train=True, augmentations=lsj(), mask_format=mask_format, recompute_boxes=False)
    out = mapper(record, np.random.default_rng(seed))
    _, _, crop = drawn(seed)
    instances = out["instances"]
    for row, i in enumerate(instances.gt_classes.tolist()):
        corners = np.asarray(POLYGONS[i]).reshape(-1, 2)
        moved = direct(corners, seed)
        # Box: the moved corners' extent, clipped to the crop.
        box = np.clip([*moved.min(0), *moved.max(0)], 0, [crop.w, crop.h, crop.w, crop.h])
        np.testing.assert_allclose(instances.gt_boxes.tensor[row].numpy(), box, atol=1e-3)
        # Mask: the moved polygon, rasterised in the crop.
        expected = polygons_to_bitmask([moved.reshape(-1)], crop.h, crop.w)
        if mask_format == "polygon":
            # The same polygon up to clipping at the crop and rounding (an edge at y = 57.5 vs
            # 57.49999 moves a whole pixel row): at most a one-pixel band along the outline.
            got = polygons_to_bitmask(instances.gt_masks.polygons[row], crop.h, crop.w)
            perimeter = np.linalg.norm(moved - np.roll(moved, 1, axis=0), axis=1).sum()
            assert (got != expected).sum() <= perimeter
        else:
            got = instances.gt_masks.tensor[row].numpy()
            union = (got | expected).sum()
            assert union and (got & expected).sum() / union > 0.9  # resampled at another resolution: edges differ


@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_recomputed_from_masks_hug_what_the_crop_left(record, seed):
    """With recompute_boxes (the LSJ loader's setting) a box is the extent of what the crop left
    of the object, which for the triangle is smaller than its clipped box."""
    mapper = DatasetMapper(is_train=True, augmentations=lsj(), recompute_boxes=True)
    out = mapper(record, np.random.default_rng(seed))
    _, _, crop = drawn(seed)
    instances = out["instances"]
    for row, i in enumerate(instances.gt_classes.tolist()):
        mask = polygons_to_bitmask([direct(np.asarray(POLYGONS[i]).reshape(-1, 2), seed).reshape(-1)], crop.h, crop.w)
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(instances.gt_boxes.tensor[row].numpy(), expected, atol=1.0)


def test_lsj_loader_is_detectron2s(record):
    from detrun.recipes.common.data.coco import coco_lsj

    augs = instantiate(coco_lsj.train.mapper.augmentations)
    assert [type(a).__name__ for a in augs] == ["RandomFlip", "ResizeScale", "FixedSizeCrop"]
    assert (augs[1].min_scale, augs[1].max_scale, augs[1].target_height, augs[2].crop_size, augs[2].pad) == \
        (0.1, 2.0, 1024, (1024, 1024), False)
    assert coco_lsj.train.mapper.recompute_boxes and coco_lsj.train.total_batch_size == 64


def test_padding_keeps_coordinates(record):
    """FixedSizeCrop(pad=True): images smaller than the crop are padded bottom/right, coordinates unchanged."""
    for seed in SEEDS:
        mapper = DatasetMapper(is_train=True, augmentations=lsj(pad=True), use_keypoint=True)
        out = mapper(record, np.random.default_rng(seed))
        assert tuple(out["image"].shape) == (3, TARGET, TARGET)
        flip, resize, crop = drawn(seed, pad=True)
        if resize.new_w <= TARGET and resize.new_h <= TARGET:
            got = out["instances"].gt_keypoints.tensor[0, 2, :2].numpy()  # the square's third keypoint
            np.testing.assert_allclose(got, direct(np.array([[50.0, 85.0]]), seed)[0], atol=1e-4)
