import numpy as np
import pytest
from PIL import Image

from detrun.data.transforms import (
    CropTransform,
    ExtentTransform,
    FixedSizeCrop,
    HFlipTransform,
    PadTransform,
    RandomCrop,
    RandomFlip,
    ResizeScale,
    ResizeShortestEdge,
    ResizeTransform,
    RotationTransform,
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


@pytest.mark.parametrize("shape", [(40, 60), (40, 60, 1), (40, 60, 3)], ids=["HxW", "HxWx1", "HxWx3"])
@pytest.mark.parametrize("transform", [
    ResizeTransform(h=40, w=60, new_h=20, new_w=90),
    ResizeTransform(h=40, w=60, new_h=20, new_w=90, interp=Image.NEAREST),  # Detectron2 recipes pass Pillow's constants
    HFlipTransform(width=60), VFlipTransform(height=40), CropTransform(x0=5, y0=6, w=30, h=20),
    PadTransform(pad_w=3, pad_h=4), RotationTransform(h=40, w=60, angle=30),
    ExtentTransform(src_rect=(-10, 5, 50, 45), output_size=(20, 30)),
], ids=lambda t: type(t).__name__)
def test_transforms_keep_the_image_shape_convention(transform, shape):
    """Grey images from read_image(..., "L") are [H, W, 1]; label maps and masks are [H, W]."""
    img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    out = transform.apply_image(img)
    reference = transform.apply_image(np.repeat(img.reshape(40, 60, -1)[..., :1], 3, axis=2))[..., 0]
    assert out.ndim == len(shape) and out.dtype == np.uint8 and (len(shape) == 2 or out.shape[2] == shape[2])
    if len(shape) < 3 or shape[2] == 1:  # the grey result is the colour result's channel
        np.testing.assert_array_equal(out.reshape(reference.shape), reference)


def test_rotation_by_right_angles_matches_numpy():
    img, boxes, polys, masks, kps = scene()
    for k in (1, 2, 3):
        t = RotationTransform(h=40, w=60, angle=90 * k)
        np.testing.assert_array_equal(t.apply_image(img), np.rot90(img, k))  # counter-clockwise, as np.rot90
        np.testing.assert_array_equal(t.apply_masks(masks), np.rot90(masks, k, axes=(1, 2)))
        for poly, mask in zip(t.apply_polygons(polys), t.apply_masks(masks)):
            assert (polygons_to_bitmask([poly], *mask.shape) != mask).sum() <= 3
    t = RotationTransform(h=40, w=60, angle=90)
    np.testing.assert_allclose(t.apply_box(boxes), [[4, 60 - 25, 30, 60 - 5], [10, 60 - 55, 35, 60 - 30]])


def test_rotation_inverse_and_fills():
    img, boxes, polys, masks, kps = scene()
    t = RotationTransform(h=40, w=60, angle=33)
    assert t.apply_image(img).shape == (round(40 * np.cos(np.deg2rad(33)) + 60 * np.sin(np.deg2rad(33))),
                                         round(60 * np.cos(np.deg2rad(33)) + 40 * np.sin(np.deg2rad(33))), 3)
    back = t.inverse()
    np.testing.assert_allclose(back.apply_coords(t.apply_coords(boxes.reshape(-1, 2))), boxes.reshape(-1, 2), atol=1.0)
    # bilinear resampling reproduces a linear ramp, so away from the filled corners a round trip is exact
    ramp = (np.add.outer(np.arange(40) * 2, np.arange(60) * 3)).astype(np.uint8)[..., None]
    np.testing.assert_allclose(back.apply_image(t.apply_image(ramp))[10:30, 15:45].astype(int), ramp[10:30, 15:45], atol=1)
    seg = t.apply_segmentation(np.ones((40, 60), dtype=np.uint8))
    assert seg[0, 0] == 255 and seg[seg.shape[0] // 2, seg.shape[1] // 2] == 1 and t.apply_masks(masks)[:, 0, 0].sum() == 0
    with pytest.raises(NotImplementedError, match="expand=False"):
        RotationTransform(h=40, w=60, angle=10, expand=False).inverse()


def test_inverses_map_coordinates_back():
    pts = np.array([[3.0, 4], [50, 30]])
    chain = TransformList([ResizeTransform(h=40, w=60, new_h=80, new_w=90), HFlipTransform(width=90),
                           RotationTransform(h=80, w=90, angle=-20)])
    np.testing.assert_allclose(chain.inverse().apply_coords(chain.apply_coords(pts)), pts, atol=1.0)
    np.testing.assert_allclose(TransformList([ResizeTransform(h=40, w=60, new_h=80, new_w=90)]).inverse()
                               .apply_coords(pts * 2), pts * [4 / 3, 1])


def test_extent_matches_crop_and_pad():
    img, boxes, polys, masks, kps = scene()
    # a same-resolution window that starts inside and ends outside the image: crop, then pad with fill
    t = ExtentTransform(src_rect=(10, 8, 70, 38), output_size=(30, 60))
    out = t.apply_image(img)
    np.testing.assert_array_equal(out[:, :50], img[8:38, 10:60])
    assert (out[:, 50:] == 0).all()
    np.testing.assert_allclose(t.apply_box(boxes), boxes - [10, 8, 10, 8])
    seg = t.apply_segmentation(np.full((40, 60), 3, dtype=np.uint8))
    assert (seg[:, :50] == 3).all() and (seg[:, 50:] == 255).all()


def test_pad_fills_label_maps_with_ignore():
    t = PadTransform(pad_w=2, pad_h=1, pad_value=128)
    seg = t.apply_segmentation(np.zeros((3, 4), dtype=np.uint8))
    assert seg.shape == (4, 6) and (seg[3] == 255).all() and (seg[:, 4:] == 255).all() and (seg[:3, :4] == 0).all()


def test_interp_names_and_pillow_constants_only():
    assert ResizeTransform(h=4, w=4, new_h=2, new_w=2, interp=Image.BICUBIC).resample == Image.BICUBIC
    with pytest.raises(ValueError, match="interp must be one of"):
        ResizeTransform(h=4, w=4, new_h=2, new_w=2, interp=1)  # cv2.INTER_LINEAR, or Pillow's LANCZOS?
