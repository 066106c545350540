"""Augmentations keep image, boxes and label maps aligned, and draw randomness only from the given rng."""
import numpy as np
import pytest

from detrun.data.transforms import (
    AugInput,
    BlendTransform,
    FixedSizeCrop,
    HFlipTransform,
    NoOpTransform,
    RandomApply,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomExtent,
    RandomFlip,
    RandomRotation,
    RandomSaturation,
    ResizeScale,
    ResizeShortestEdge,
    apply_augmentations,
)

H, W = 48, 64
BOX = np.array([[16.0, 10, 40, 30]])  # the red object, XYXY pixels
OBJECT, BACKGROUND, FILL, BLEND = 1, 0, 255, -1


def scene():
    """A red rectangle (x 16..40, y 10..30) on blue, and its label map (1 object, 0 background)."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[..., 2] = 250
    img[10:30, 16:40] = (250, 0, 0)
    sem_seg = np.zeros((H, W), dtype=np.uint8)
    sem_seg[10:30, 16:40] = OBJECT
    return img, sem_seg


def labels_from_colours(img):
    """The label each output pixel's colour says: red → object, blue → background, black (rotation/extent
    fill) or grey (pad) → 255, and BLEND for pixels interpolated across an edge."""
    r, g, b = (img[..., c].astype(int) for c in range(3))
    grey = (abs(r - 128) <= 28) & (abs(g - 128) <= 28) & (abs(b - 128) <= 28)
    black = (r <= 30) & (g <= 30) & (b <= 30)
    return np.select([(r >= 200) & (g <= 30) & (b <= 50), (b >= 200) & (r <= 50) & (g <= 30), grey | black],
                     [OBJECT, BACKGROUND, FILL], BLEND)


GEOMETRIC = {
    "flip_h": RandomFlip(1.0),
    "flip_v": RandomFlip(1.0, horizontal=False, vertical=True),
    "apply_flip": RandomApply(RandomFlip(1.0), prob=0.5),
    "apply_transform": RandomApply(HFlipTransform(width=W), prob=0.5),
    "resize_shortest_edge": ResizeShortestEdge(short_edge_length=(30, 90), sample_style="range"),
    "crop_relative": RandomCrop("relative", (0.6, 0.7)),
    "crop_relative_range": RandomCrop("relative_range", (0.5, 0.5)),
    "crop_absolute": RandomCrop("absolute", (30, 50)),
    "crop_absolute_range": RandomCrop("absolute_range", (20, 40)),
    "rotation_range": RandomRotation([-40, 40]),
    "rotation_choice": RandomRotation([90, 180, 270], sample_style="choice"),
    "rotation_no_expand_center": RandomRotation([-30, 30], expand=False, center=[(0.3, 0.3), (0.7, 0.7)]),
    "rotation_nearest": RandomRotation(25, interp="nearest"),
    "extent": RandomExtent(scale_range=(0.6, 1.5), shift_range=(0.4, 0.4)),
    "resize_scale": ResizeScale(0.5, 2.0, 64, 64),
    "fixed_size_crop": FixedSizeCrop((40, 56)),
    "fixed_size_pad": FixedSizeCrop((80, 100)),
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_geometric_augmentation_keeps_image_boxes_and_labels_aligned(name, seed):
    img, sem_seg = scene()
    aug_input = AugInput(img, boxes=BOX.copy(), sem_seg=sem_seg)
    tfm = aug_input.apply_augmentations([GEOMETRIC[name]], np.random.default_rng(seed))
    out, seg = aug_input.image, aug_input.sem_seg
    assert out.dtype == np.uint8 and out.shape[2] == 3 and seg.shape == out.shape[:2] and seg.dtype == np.uint8
    # The label map moved exactly as the pixels did: every pixel whose colour is not a blend across an
    # edge says the label the map has (a half-pixel misalignment flips a whole edge's worth). Blends are
    # at most 2 pixels deep (upscaling spreads one input pixel over up to 2 output pixels).
    colours = labels_from_colours(out)
    edges = np.count_nonzero(np.diff(seg, axis=0)) + np.count_nonzero(np.diff(seg, axis=1))
    assert np.count_nonzero(colours == BLEND) <= 2 * edges
    assert np.count_nonzero((colours != seg) & (colours != BLEND)) == 0
    # The transformed box, clipped to the image, is where the red pixels are.
    oh, ow = out.shape[:2]
    box = np.clip(aug_input.boxes[0], 0, [ow, oh, ow, oh])
    ys, xs = np.nonzero(seg == OBJECT)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        assert len(xs) <= 2 * max(oh, ow)  # cropped away, at most a sliver left
        return
    atol = 1.5 if "rotation" in name else 1.0  # blended edge pixels are not counted as object
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=atol)
    # Replaying the returned transforms gives the same result (what the mapper does for instances).
    np.testing.assert_array_equal(tfm.apply_image(img), out)
    np.testing.assert_array_equal(tfm.apply_segmentation(sem_seg), seg)


def test_fill_regions_are_ignored_in_label_maps():
    img, sem_seg = scene()
    aug_input = AugInput(img, sem_seg=sem_seg)
    aug_input.apply_augmentations([FixedSizeCrop((80, 100), pad_value=128.0, seg_pad_value=255)], np.random.default_rng(0))
    assert (aug_input.image[H:] == 128).all() and (aug_input.sem_seg[H:] == 255).all()
    assert (aug_input.sem_seg[:, W:] == 255).all() and np.array_equal(aug_input.sem_seg[:H, :W], sem_seg)


def test_random_apply_probability():
    img, _ = scene()
    rng = np.random.default_rng(0)
    kinds = [type(RandomApply(RandomFlip(1.0), prob=0.3).get_transform(img, rng)) for _ in range(400)]
    assert 0.2 < kinds.count(HFlipTransform) / 400 < 0.4 and set(kinds) == {HFlipTransform, NoOpTransform}
    with pytest.raises(ValueError, match="prob"):
        RandomApply(RandomFlip(), prob=1.5)


@pytest.mark.parametrize("aug", [RandomBrightness(0.5, 1.5), RandomContrast(0.5, 1.5), RandomSaturation(0.2, 1.8)],
                         ids=["brightness", "contrast", "saturation"])
def test_color_augmentations_against_numpy(aug):
    rng_img = np.random.default_rng(1)
    img = rng_img.integers(0, 256, (H, W, 3), dtype=np.uint8)
    aug_input = AugInput(img, boxes=BOX.copy(), sem_seg=scene()[1])
    aug_input.apply_augmentations([aug], np.random.default_rng(3))
    w = np.random.default_rng(3).uniform(aug.intensity_min, aug.intensity_max)  # the one draw it makes
    x = img.astype(np.float64)
    reference = {"RandomBrightness": 0.0, "RandomContrast": x.mean(),
                 "RandomSaturation": (x @ [0.299, 0.587, 0.114])[..., None]}[type(aug).__name__]
    expected = np.clip(np.rint((1 - w) * reference + w * x), 0, 255)
    assert np.abs(aug_input.image.astype(int) - expected).max() <= 1  # float32 vs float64 rounding
    np.testing.assert_array_equal(aug_input.boxes, BOX)
    np.testing.assert_array_equal(aug_input.sem_seg, scene()[1])


def test_saturation_channel_order():
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 200  # red in RGB, blue in BGR
    rgb = RandomSaturation(0.0, 0.0).get_transform(img, np.random.default_rng(0)).apply_image(img)
    bgr = RandomSaturation(0.0, 0.0, image_format="BGR").get_transform(img, np.random.default_rng(0)).apply_image(img)
    assert (rgb == round(200 * 0.299)).all() and (bgr == round(200 * 0.114)).all()
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        RandomSaturation(0.5, 1.5).get_transform(img[..., :1], np.random.default_rng(0))


def test_brightness_blend_clips_and_rounds():
    img = np.array([[[100, 200, 3]]], dtype=np.uint8)
    out = BlendTransform(src_image=0.0, src_weight=-0.5, dst_weight=1.5).apply_image(img)
    assert out.tolist() == [[[150, 255, 4]]]  # 4.5 rounds to even, 300 clips


def test_augmentations_use_only_the_given_rng():
    """Resuming replays the per-sample rng; the global numpy/python state must not matter."""
    import random
    img, sem_seg = scene()
    augs = list(GEOMETRIC.values()) + [RandomBrightness(0.5, 1.5), RandomContrast(0.5, 1.5), RandomSaturation(0.5, 1.5)]
    results = []
    for global_seed in (0, 1):
        np.random.seed(global_seed)
        random.seed(global_seed)
        results.append([apply_augmentations([aug], img, np.random.default_rng(7))[0] for aug in augs])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_aug_input_checks_shapes():
    img, sem_seg = scene()
    with pytest.raises(ValueError, match="sem_seg"):
        AugInput(img, sem_seg=sem_seg[:10])
    aug_input = AugInput(img)
    tfm = RandomFlip(1.0)(aug_input, np.random.default_rng(0))  # Detectron2's aug(aug_input) form
    assert isinstance(tfm, HFlipTransform) and np.array_equal(aug_input.image, img[:, ::-1])
