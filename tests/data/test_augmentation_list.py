"""Detectron2's AugmentationList, and augmentations that read boxes or the label map from the
AugInput (Detectron2 passes what `get_transform`'s parameter names ask for)."""
import numpy as np
import pytest

from detrun.data.transforms import (
    Augmentation,
    AugInput,
    AugmentationList,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    RandomApply,
    RandomCrop_CategoryAreaConstraint,
    RandomFlip,
    TransformList,
)


class ScriptedRng:
    """Stands in for the generator: `integers` returns the scripted values in order (`random` 0)."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, low, high=None):
        value = self.values.pop(0)
        assert (0 if high is None else low) <= value < (low if high is None else high)
        return value

    def random(self):
        return 0.0


def test_augmentation_list_applies_each_to_the_previous_output_and_returns_the_transform_list():
    image = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    sem_seg = (image % 3).astype(np.uint8)
    aug_input = AugInput(image, boxes=np.array([[1.0, 0, 3, 2]]), sem_seg=sem_seg)
    augs = AugmentationList([RandomFlip(1.0), CropTransform(x0=2, y0=1, w=3, h=2)])
    tfms = augs(aug_input, np.random.default_rng(0))
    assert isinstance(tfms, TransformList) and [type(t) for t in tfms.transforms] == [HFlipTransform, CropTransform]
    # by hand: the flip maps x to 6 - x, so the box's x becomes [3, 5]; the crop shifts by (-2, -1)
    np.testing.assert_array_equal(aug_input.boxes, [[1.0, -1, 3, 1]])
    np.testing.assert_array_equal(aug_input.image, image[1:3, ::-1][:, 2:5])
    np.testing.assert_array_equal(aug_input.sem_seg, sem_seg[1:3, ::-1][:, 2:5])
    np.testing.assert_array_equal(tfms.apply_image(image), aug_input.image)  # replays on other data
    with pytest.raises(TypeError, match="call it on an AugInput"):
        augs.get_transform(image, np.random.default_rng(0))


class KeepLargestBox(Augmentation):
    """Reads boxes from the AugInput: crops to the largest box, nothing without boxes."""

    def get_transform(self, image, boxes, rng):
        if boxes is None or len(boxes) == 0:
            return NoOpTransform()
        x0, y0, x1, y1 = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))].astype(int)
        return CropTransform(x0=x0, y0=y0, w=x1 - x0, h=y1 - y0)


def test_an_augmentation_gets_what_its_parameter_names_ask_for():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    aug_input = AugInput(image, boxes=np.array([[1.0, 1, 3, 3], [2.0, 4, 8, 9]]))
    tfm = RandomApply(KeepLargestBox(), prob=1.0)(aug_input, np.random.default_rng(0))  # passed through RandomApply
    assert aug_input.image.shape == (5, 6, 3) and isinstance(tfm.transforms[0], CropTransform)
    np.testing.assert_array_equal(aug_input.boxes[1], [0.0, 0, 6, 5])
    assert isinstance(KeepLargestBox()(AugInput(image), np.random.default_rng(0)), NoOpTransform)  # boxes: None

    class AsksForMasks(Augmentation):
        def get_transform(self, image, masks, rng):
            return NoOpTransform()

    with pytest.raises(TypeError, match=r"asks for \['masks'\]"):
        AsksForMasks()(AugInput(image))


def halves():
    """A 4x4 label map: columns 0-1 are category 0, columns 2-3 category 1."""
    sem_seg = np.zeros((4, 4), dtype=np.uint8)
    sem_seg[:, 2:] = 1
    return sem_seg


def test_category_area_constraint_crops_where_no_category_fills_the_window():
    aug = RandomCrop_CategoryAreaConstraint("absolute", (2, 2), single_category_max_area=0.75)
    aug_input = AugInput(np.zeros((4, 4, 3), dtype=np.uint8), sem_seg=halves())
    # (y0, x0) draws: (0, 0) one category, (2, 2) one category, (1, 1) two, 2 pixels each: taken
    tfm = aug(aug_input, ScriptedRng(0, 0, 2, 2, 1, 1))
    assert (tfm.x0, tfm.y0, tfm.w, tfm.h) == (1, 1, 2, 2)
    np.testing.assert_array_equal(aug_input.sem_seg, [[0, 1], [0, 1]])
    # ignoring category 1, no window holds two categories: after 10 tries the last window is kept
    ignoring = RandomCrop_CategoryAreaConstraint("absolute", (2, 2), single_category_max_area=0.75, ignored_category=1)
    tfm = ignoring(AugInput(np.zeros((4, 4, 3), dtype=np.uint8), sem_seg=halves()),
                   ScriptedRng(*[1, 1] * 9, 2, 0))
    assert (tfm.x0, tfm.y0) == (0, 2)
    # a window a single category may fill entirely: a plain RandomCrop, which doesn't need the label map
    plain = RandomCrop_CategoryAreaConstraint("absolute", (2, 2))
    tfm = plain(AugInput(np.zeros((4, 4, 3), dtype=np.uint8)), ScriptedRng(2, 0))
    assert (tfm.x0, tfm.y0) == (0, 2)
    with pytest.raises(ValueError, match="sem_seg="):
        aug(AugInput(np.zeros((4, 4, 3), dtype=np.uint8)), ScriptedRng(0, 0))
