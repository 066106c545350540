import numpy as np
import pytest

from detrun.data.transforms import (
    CropTransform,
    FixedSizeCrop,
    HFlipTransform,
    PadTransform,
    RandomCrop,
    RandomFlip,
    ResizeScale,
    ResizeShortestEdge,
    ResizeTransform,
    TransformList,
    VFlipTransform,
    apply_augmentations,
    clip_polygon,
    keypoint_flip_indices,
)
from detrun.structures import polygons_to_bitmask


def scene(h=40, w=60, seed=0):
    """An image, XYXY boxes, one polygon per object, its bitmask and keypoints [N, 3, 3]."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    polys = [np.array([5.0, 4, 25, 6, 15, 30]), np.array([30.0, 10, 55, 10, 55, 35, 30, 35])]
    boxes = np.array([[5.0, 4, 25, 30], [30, 10, 55, 35]])
    masks = np.stack([polygons_to_bitmask([p], h, w) for p in polys])
    kps = np.array([[[5, 4, 2], [25, 6, 2], [15, 30, 1]], [[30, 10, 2], [55, 10, 2], [42, 20, 0]]], dtype=np.float64)
    return img, boxes, polys, masks, kps


@pytest.mark.parametrize("flip", [HFlipTransform(width=60, keypoint_flip_indices=[1, 0, 2]),
                                  VFlipTransform(height=40, keypoint_flip_indices=[1, 0, 2])])
def test_flip_twice_is_identity(flip):
    img, boxes, polys, masks, kps = scene()
    twice = TransformList([flip, flip])
    assert np.array_equal(twice.apply_image(img), img)
    np.testing.assert_allclose(twice.apply_box(boxes), boxes)
    for a, b in zip(twice.apply_polygons(polys), polys):
        np.testing.assert_allclose(a, b)
    assert np.array_equal(twice.apply_masks(masks), masks)
    np.testing.assert_allclose(twice.apply_keypoints(kps), kps)


def test_hflip_is_consistent_across_annotations():
    img, boxes, polys, masks, kps = scene()
    t = HFlipTransform(width=60, keypoint_flip_indices=[1, 0, 2])
    assert np.array_equal(t.apply_image(img), img[:, ::-1])
    np.testing.assert_allclose(t.apply_box(boxes), [[35, 4, 55, 30], [5, 10, 30, 35]])
    # Flipped polygons rasterize to the flipped bitmaps: exactly for the axis-aligned one; pycocotools'
    # rasterizer is not mirror-symmetric on slanted edges, so the triangle may differ by a few outline pixels.
    flipped_polys, flipped_masks = t.apply_polygons(polys), t.apply_masks(masks)
    assert (polygons_to_bitmask([flipped_polys[0]], 40, 60) != flipped_masks[0]).sum() <= 3
    assert np.array_equal(polygons_to_bitmask([flipped_polys[1]], 40, 60), flipped_masks[1])
    flipped = t.apply_keypoints(kps)
    # keypoint 0 ("left") now holds the mirror of old keypoint 1 ("right")
    np.testing.assert_allclose(flipped[0, 0], [60 - 25, 6, 2])
    np.testing.assert_allclose(flipped[0, 2], [60 - 15, 30, 1])


def test_resize_scales_everything_consistently():
    img, boxes, polys, masks, kps = scene()
    t = ResizeTransform(h=40, w=60, new_h=80, new_w=90)
    assert t.apply_image(img).shape == (80, 90, 3)
    np.testing.assert_allclose(t.apply_box(boxes), boxes * [1.5, 2, 1.5, 2])
    np.testing.assert_allclose(t.apply_keypoints(kps)[..., :2], kps[..., :2] * [1.5, 2])
    np.testing.assert_array_equal(t.apply_keypoints(kps)[..., 2], kps[..., 2])
    resized_masks = t.apply_masks(masks)
    assert resized_masks.shape == (2, 80, 90)
    for poly, mask in zip(t.apply_polygons(polys), resized_masks):
        np.testing.assert_allclose(poly.reshape(-1, 2), (polys[0] if poly.size == 6 else polys[1]).reshape(-1, 2) * [1.5, 2])
        from_poly = polygons_to_bitmask([poly], 80, 90)
        # nearest-neighbour upsampled bitmap vs exact rasterization: equal except along the outline
        assert (from_poly != mask).mean() < 0.02
    # masks stay aligned with boxes: the resized bitmap's extent matches the resized box
    ys, xs = np.nonzero(resized_masks[1])
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], t.apply_box(boxes)[1], atol=1.5)


def test_crop_clips_polygons_and_masks_consistently():
    img, boxes, polys, masks, kps = scene()
    t = CropTransform(x0=10, y0=8, w=35, h=20)
    assert np.array_equal(t.apply_image(img), img[8:28, 10:45])
    cropped_masks = t.apply_masks(masks)
    for poly, mask in zip(polys, cropped_masks):
        out = t.apply_polygons([poly])
        assert len(out) == 1
        assert out[0].reshape(-1, 2).min() >= 0 and out[0][0::2].max() <= 35 and out[0][1::2].max() <= 20
        # Exact up to pycocotools rounding where a cut splits a slanted edge (at most a pixel or two).
        assert (polygons_to_bitmask(out, 20, 35) != mask).sum() <= 2
    assert np.array_equal(polygons_to_bitmask(t.apply_polygons([polys[1]]), 20, 35), cropped_masks[1])
    # a polygon entirely outside the window disappears
    assert t.apply_polygons([np.array([50.0, 30, 58, 30, 58, 38])]) == []
    np.testing.assert_allclose(t.apply_box(boxes), boxes - [10, 8, 10, 8])


def test_clip_polygon_against_reference_areas():
    square = np.array([[0.0, 0], [10, 0], [10, 10], [0, 10]])
    clipped = clip_polygon(square, 5, -1, 20, 4)
    xs, ys = clipped[:, 0], clipped[:, 1]
    area = 0.5 * abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
    assert area == pytest.approx(5 * 4)
    assert len(clip_polygon(square, 20, 20, 30, 30)) == 0


def test_pad_keeps_coordinates():
    img, boxes, polys, masks, kps = scene()
    t = PadTransform(pad_w=4, pad_h=6, pad_value=128)
    out = t.apply_image(img)
    assert out.shape == (46, 64, 3) and (out[40:] == 128).all() and np.array_equal(out[:40, :60], img)
    assert t.apply_masks(masks).shape == (2, 46, 64) and not t.apply_masks(masks)[:, 40:].any()
    np.testing.assert_allclose(t.apply_box(boxes), boxes)


def test_augmentations_produce_expected_sizes():
    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    out, _ = apply_augmentations([ResizeShortestEdge(short_edge_length=80, max_size=100)], img, rng)
    assert out.shape[:2] == (67, 100)  # long side capped at 100
    out, _ = apply_augmentations([ResizeShortestEdge(short_edge_length=[20, 30], sample_style="range")], img, rng)
    assert 20 <= min(out.shape[:2]) <= 30
    for _ in range(5):
        out, tfm = apply_augmentations([ResizeScale(min_scale=0.5, max_scale=2.0, target_height=64, target_width=64),
                                        FixedSizeCrop(crop_size=(64, 64))], img, rng)
        assert out.shape == (64, 64, 3)
    out, _ = apply_augmentations([RandomCrop(crop_type="relative", crop_size=(0.5, 0.5))], img, rng)
    assert out.shape[:2] == (20, 30)
    out, _ = apply_augmentations([RandomCrop(crop_type="absolute_range", crop_size=(10, 20))], img, rng)
    assert 10 <= out.shape[0] <= 20 and 10 <= out.shape[1] <= 20
    flips = [type(RandomFlip(prob=0.5).get_transform(img, rng)).__name__ for _ in range(40)]
    assert {"HFlipTransform", "NoOpTransform"} == set(flips)


def test_keypoint_flip_indices():
    assert keypoint_flip_indices(["left_eye", "right_eye", "nose"], [("left_eye", "right_eye")]) == [1, 0, 2]
    with pytest.raises(ValueError, match="not keypoint names"):
        keypoint_flip_indices(["a"], [("a", "b")])
