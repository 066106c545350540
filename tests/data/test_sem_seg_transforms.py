"""Label maps go through every transform alongside their image and stay aligned with it.

The image is painted from a label map (label k has colour COLORS[k]); after a transform the label
map must be exactly what the transformed image's colours say (nearest-neighbour images, so no
colour is blended), and pixels the transform creates are 255 ("ignore") in the label map.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from detrun.data import DatasetMapper, build_train_loader
from detrun.data.transforms import (
    AugInput,
    CropTransform,
    ExtentTransform,
    FixedSizeCrop,
    HFlipTransform,
    PadTransform,
    RandomCrop_CategoryAreaConstraint,
    RandomFlip,
    ResizeScale,
    ResizeShortestEdge,
    ResizeTransform,
    RotationTransform,
    TransformList,
    VFlipTransform,
)

COLORS = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250], [250, 250, 10], [10, 250, 250]], dtype=np.uint8)


def label_map(h=37, w=53, seed=0):
    """Blocks of 5 labels at random sizes, so boundaries fall at odd positions."""
    rng = np.random.default_rng(seed)
    rows = np.cumsum(rng.integers(1, 6, h)) // 7
    cols = np.cumsum(rng.integers(1, 6, w)) // 5
    return ((rows[:, None] + 2 * cols[None, :]) % len(COLORS)).astype(np.int64)


def labels_from_colors(image, fill=None):
    """The label each pixel's colour names; `fill` (the image's pad colour) -> 255."""
    out = np.full(image.shape[:2], -1, dtype=np.int64)
    for k, color in enumerate(COLORS):
        out[(image == color).all(axis=-1)] = k
    if fill is not None:
        out[(image == fill).all(axis=-1)] = 255
    assert (out >= 0).all(), "a pixel has a colour that is no label's: the image was blended"
    return out


TRANSFORMS = [
    HFlipTransform(width=53),
    VFlipTransform(height=37),
    CropTransform(x0=7, y0=5, w=30, h=20),
    ResizeTransform(h=37, w=53, new_h=61, new_w=29, interp="nearest"),
    ResizeTransform(h=37, w=53, new_h=20, new_w=80, interp="nearest"),
    TransformList([ResizeTransform(h=37, w=53, new_h=74, new_w=106, interp="nearest"), HFlipTransform(width=106),
                   CropTransform(x0=11, y0=3, w=50, h=60)]),
    RotationTransform(h=37, w=53, angle=30, expand=True, interp="nearest"),
    ExtentTransform(src_rect=(-5, -3, 60, 40), output_size=(50, 70), interp="nearest"),
]


@pytest.mark.parametrize("tfm", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_label_map_follows_the_image(tfm):
    labels = label_map()
    image = COLORS[labels]
    out_image, out_labels = tfm.apply_image(image), tfm.apply_segmentation(labels)
    assert out_labels.shape == out_image.shape[:2] and out_labels.dtype == labels.dtype
    fill = np.zeros(3, np.uint8)  # what rotation / extent put outside the source
    np.testing.assert_array_equal(out_labels, labels_from_colors(out_image, fill))


def test_padding_is_ignore():
    labels = label_map()
    pad = PadTransform(pad_w=5, pad_h=3, pad_value=0)
    out = pad.apply_segmentation(labels)
    assert out.shape == (40, 58) and (out[37:] == 255).all() and (out[:, 53:] == 255).all()
    np.testing.assert_array_equal(out[:37, :53], labels)


def test_aug_input_and_random_augmentations_keep_alignment():
    labels = label_map(60, 80, seed=3)
    image = COLORS[labels]
    augs = [ResizeScale(0.5, 1.5, 64, 64, interp="nearest"), FixedSizeCrop((48, 48), pad_value=0),
            RandomFlip(prob=1.0), ResizeShortestEdge(short_edge_length=[40, 56], interp="nearest")]
    for seed in range(5):
        aug_input = AugInput(image, sem_seg=labels)
        aug_input.apply_augmentations(augs, np.random.default_rng(seed))
        np.testing.assert_array_equal(aug_input.sem_seg, labels_from_colors(aug_input.image, np.zeros(3, np.uint8)))


def test_category_area_crop_reads_the_label_map_through_the_mapper(tmp_path):
    labels = label_map(60, 80, seed=5)
    Image.fromarray(COLORS[labels]).save(tmp_path / "a.png")
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "a_sem.png")
    record = {"file_name": str(tmp_path / "a.png"), "sem_seg_file_name": str(tmp_path / "a_sem.png"), "height": 60,
              "width": 80, "image_id": 1, "annotations": []}
    mapper = DatasetMapper(is_train=True, augmentations=[
        RandomCrop_CategoryAreaConstraint("absolute", (32, 40), single_category_max_area=0.6),
        ResizeTransform(h=32, w=40, new_h=45, new_w=57, interp="nearest"), RandomFlip(prob=1.0)])
    for seed in range(3):
        out = mapper(record, np.random.default_rng(seed))
        assert out["sem_seg"].dtype == torch.int64 and out["sem_seg"].shape == out["image"].shape[1:]
        image = out["image"].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out["sem_seg"].numpy(), labels_from_colors(image))
    # at test time (default) the label map is not read; use_sem_seg=True reads it
    assert "sem_seg" not in DatasetMapper(is_train=False)(record)
    assert DatasetMapper(is_train=False, use_sem_seg=True)(record)["sem_seg"].shape == (60, 80)


def test_palette_label_png_gives_indices_and_a_colour_one_is_refused(tmp_path):
    from detrun.data import DataError
    from detrun.data.image_io import read_label_map

    labels = label_map().astype(np.uint8)
    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([200, 100, 0] * 256)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_map(str(tmp_path / "p.png")), labels)
    Image.fromarray(COLORS[labels]).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="one-channel"):
        read_label_map(str(tmp_path / "rgb.png"))


def test_empty_filter_keeps_images_with_label_maps():
    base = {"height": 8, "width": 8, "file_name": "x.png"}
    records = [dict(base, image_id=1, annotations=[]), dict(base, image_id=2, annotations=[], sem_seg_file_name="s.png"),
               dict(base, image_id=3, annotations=[{"iscrowd": 1}])]
    loader = build_train_loader(dataset=records, mapper=lambda r, rng: r, total_batch_size=1)
    assert [r["image_id"] for r in loader.dataset.records] == [2]
