import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from torchvision.ops import roi_align

from detrun.structures import BitMasks, PolygonMasks, polygons_to_bitmask


def random_polygon(rng, h, w, n=6):
    cx, cy = rng.uniform(10, w - 10), rng.uniform(10, h - 10)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(4, 10, n)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools
def test_polygons_to_bitmask_matches_pycocotools():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    polys = [random_polygon(rng, h, w), random_polygon(rng, h, w)]
    expected = mask_util.decode(mask_util.merge(mask_util.frPyObjects([p.tolist() for p in polys], h, w)))
    assert np.array_equal(polygons_to_bitmask(polys, h, w), expected.astype(bool))
    assert not polygons_to_bitmask([], h, w).any()


def test_polygon_masks_validation_and_indexing():
    with pytest.raises(ValueError, match=">= 3"):
        PolygonMasks([[np.array([0.0, 0, 1, 1])]])
    pm = PolygonMasks([[[0, 0, 4, 0, 4, 2]], [[1, 1, 5, 1, 5, 5, 1, 5]], []])
    assert len(pm) == 3 and pm.nonempty().tolist() == [True, True, False]
    torch.testing.assert_close(pm.area(), torch.tensor([4.0, 16.0, 0.0]))
    torch.testing.assert_close(pm.get_bounding_boxes().tensor, torch.tensor([[0.0, 0, 4, 2], [1, 1, 5, 5], [0, 0, 0, 0]]))
    assert len(pm[torch.tensor([True, False, True])]) == 2
    assert len(pm[1:]) == 2 and len(pm[0]) == 1 and len(pm[[2, 0]]) == 2
    assert len(PolygonMasks.cat([pm, pm[0]])) == 4


def test_bitmask_crop_and_resize_matches_roi_align():
    rng = np.random.default_rng(1)
    h, w, m = 40, 60, 14
    polys = [[random_polygon(rng, h, w)] for _ in range(5)]
    bm = BitMasks.from_polygon_masks(PolygonMasks(polys), h, w)
    boxes = bm.get_bounding_boxes().tensor + torch.tensor([-1.0, -2, 1.5, 1])  # not tight on purpose
    ours = bm.crop_and_resize(boxes, m)
    rois = torch.cat([torch.arange(5, dtype=torch.float32)[:, None], boxes], 1)
    ref = roi_align(bm.tensor.float()[:, None], rois, (m, m), 1.0, sampling_ratio=2, aligned=True)[:, 0] >= 0.5
    assert ours.dtype == torch.bool and ours.shape == (5, m, m)
    # Bilinear interpolation at identical points; only borders of the image may differ (zeros vs clamp).
    assert (ours != ref).float().mean() < 0.01


def test_polygon_and_bitmask_crop_and_resize_agree():
    rng = np.random.default_rng(2)
    h, w, m = 48, 48, 28
    polys = [[random_polygon(rng, h, w)] for _ in range(4)]
    pm = PolygonMasks(polys)
    bm = BitMasks.from_polygon_masks(pm, h, w)
    boxes = pm.get_bounding_boxes().tensor
    a, b = pm.crop_and_resize(boxes, m), bm.crop_and_resize(boxes, m)
    assert a.shape == b.shape == (4, m, m)
    iou = (a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).float()
    assert (iou > 0.85).all(), iou


def test_bitmasks_basics():
    t = torch.zeros(3, 10, 12, dtype=torch.bool)
    t[0, 2:5, 3:9] = True
    t[1, 9, 11] = True
    bm = BitMasks(t)
    torch.testing.assert_close(bm.get_bounding_boxes().tensor, torch.tensor([[3.0, 2, 9, 5], [11, 9, 12, 10], [0, 0, 0, 0]]))
    assert bm.nonempty().tolist() == [True, True, False]
    assert bm.area().tolist() == [18, 1, 0]
    assert len(bm[torch.tensor([0, 2])]) == 2 and len(bm[1]) == 1
    assert len(BitMasks.cat([bm, bm])) == 6
    assert bm[:0].crop_and_resize(torch.zeros(0, 4), 7).shape == (0, 7, 7)
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        BitMasks(torch.zeros(4, 4))
