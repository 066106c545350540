"""Anchor generator vs torchvision's AnchorGenerator (rounded, inferred strides) and Detectron2's formula."""
import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList as TVImageList

from detrun.modeling.proposal_generator import DefaultAnchorGenerator

SIZES = [[32], [64], [128], [256], [512]]
RATIOS = [[0.5, 1.0, 2.0]]


def _features(image_hw, strides):
    # Feature sizes as an FPN makes them: ceil(size / stride) (P6 by stride-2 max-pool of P5).
    return [torch.zeros(1, 1, math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s)) for s in strides]


@pytest.mark.parametrize("image_hw", [(800, 1088), (224, 320), (96, 160)])
def test_torchvision_mode_matches_anchor_generator(image_hw):
    feats = _features(image_hw, [4, 8, 16, 32, 64])
    ours = DefaultAnchorGenerator(sizes=SIZES, aspect_ratios=RATIOS, strides=None, round_anchors=True)
    ref = AnchorGenerator(sizes=tuple(tuple(s) for s in SIZES), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    images = TVImageList(torch.zeros(2, 3, *image_hw), [image_hw, image_hw])
    expected = ref(images, feats)[0]
    got = torch.cat([b.tensor for b in ours(feats, image_hw)])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert ours.num_anchors == ref.num_anchors_per_location()


def test_detectron2_mode_values():
    ours = DefaultAnchorGenerator(sizes=[[32, 64]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[8, 16], offset=0.5)
    anchors = ours([torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 2, 2)])
    assert [len(a) for a in anchors] == [3 * 4 * 6, 2 * 2 * 6]
    assert ours.num_anchors == [6, 6]
    # Cell (row 1, col 2) of level 0, anchor (size 64, ratio 2): centre ((2 + .5) * 8, (1 + .5) * 8),
    # w = 64 / sqrt(2), h = 64 * sqrt(2), unrounded.
    box = anchors[0].tensor[(1 * 4 + 2) * 6 + 5]
    w, h = 64 / math.sqrt(2), 64 * math.sqrt(2)
    expected = torch.tensor([20 - w / 2, 12 - h / 2, 20 + w / 2, 12 + h / 2])
    torch.testing.assert_close(box, expected)
    # Every anchor has area size^2.
    a = anchors[1].tensor
    areas = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    torch.testing.assert_close(areas.view(-1, 6), torch.tensor([32.0**2] * 3 + [64.0**2] * 3).expand(4, 6))


def test_errors():
    with pytest.raises(ValueError, match="aspect_ratios has 2 levels"):
        DefaultAnchorGenerator(sizes=SIZES, aspect_ratios=[[1.0], [2.0]], strides=[4, 8, 16, 32, 64])
    gen = DefaultAnchorGenerator(sizes=SIZES, aspect_ratios=RATIOS, strides=None)
    with pytest.raises(ValueError, match="image_size"):
        gen(_features((64, 64), [4, 8, 16, 32, 64]))
    with pytest.raises(ValueError, match="5 levels"):
        gen(_features((64, 64), [4, 8]), (64, 64))
    assert dict(gen.state_dict()) == {}
