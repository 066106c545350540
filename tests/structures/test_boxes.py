import numpy as np
import pytest
import torch
from torchvision.ops import box_area, box_convert, box_iou

from detrun.structures import Boxes, BoxMode, pairwise_ioa, pairwise_iou


def random_boxes(n, seed, size=100.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([xy, xy + wh], dim=1)


def test_boxmode_convert_matches_torchvision():
    xywh = random_boxes(7, 0)
    ours = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(ours, box_convert(xywh, "xywh", "xyxy"))
    back = BoxMode.convert(ours, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    torch.testing.assert_close(back, xywh)
    assert BoxMode.convert([1, 2, 3, 4], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1, 2, 4, 6]
    assert BoxMode.convert((1, 2, 4, 6), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS) == (1, 2, 3, 4)
    arr = np.array([[1.0, 2, 3, 4]])
    np.testing.assert_allclose(BoxMode.convert(arr, 1, 0), [[1, 2, 4, 6]])
    np.testing.assert_allclose(arr, [[1, 2, 3, 4]])  # input untouched


def test_pairwise_iou_matches_torchvision():
    a, b = random_boxes(13, 1), random_boxes(9, 2)
    torch.testing.assert_close(pairwise_iou(Boxes(a), Boxes(b)), box_iou(a, b))
    # IoA: intersection / area of the second set
    ioa = pairwise_ioa(Boxes(a), Boxes(b))
    inter = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0).prod(2)
    expected = inter / box_area(b)[None]
    torch.testing.assert_close(ioa, expected)


def test_pairwise_iou_degenerate_and_empty():
    deg = Boxes(torch.tensor([[5.0, 5, 5, 5]]))
    assert pairwise_iou(deg, deg).item() == 0.0
    assert pairwise_iou(Boxes(torch.zeros(0, 4)), Boxes(random_boxes(3, 0))).shape == (0, 3)


def test_boxes_area_clip_nonempty_scale_centers():
    t = torch.tensor([[-5.0, 2, 20, 12], [10, 10, 10, 30], [0, 0, 4, 3]])
    b = Boxes(t.clone())
    torch.testing.assert_close(b.area(), box_area(t))
    assert b.nonempty().tolist() == [True, False, True]
    assert b.nonempty(threshold=3).tolist() == [True, False, False]
    torch.testing.assert_close(b.get_centers(), torch.tensor([[7.5, 7.0], [10, 20], [2, 1.5]]))
    b.clip((15, 18))
    torch.testing.assert_close(b.tensor, torch.tensor([[0.0, 2, 18, 12], [10, 10, 10, 15], [0, 0, 4, 3]]))
    b.scale(2.0, 0.5)
    torch.testing.assert_close(b.tensor, torch.tensor([[0.0, 1, 36, 6], [20, 5, 20, 7.5], [0, 0, 8, 1.5]]))
    assert b.inside_box((10, 40)).tolist() == [True, True, True]
    with pytest.raises(ValueError, match="inf or nan"):
        Boxes(torch.tensor([[0.0, 0, float("inf"), 1]])).clip((5, 5))


def test_boxes_indexing_cat_and_shapes():
    t = random_boxes(6, 3)
    b = Boxes(t)
    assert len(b[2]) == 1 and torch.equal(b[2].tensor[0], t[2])
    assert torch.equal(b[1:4].tensor, t[1:4])
    mask = torch.tensor([True, False, True, False, False, True])
    assert torch.equal(b[mask].tensor, t[mask])
    assert torch.equal(b[torch.tensor([5, 0])].tensor, t[[5, 0]])
    assert torch.equal(Boxes.cat([b[:2], b[2:]]).tensor, t)
    assert Boxes.cat([]).tensor.shape == (0, 4)
    assert Boxes([]).tensor.shape == (0, 4)
    assert b.tensor.dtype == torch.float32 and Boxes(t.double()).tensor.dtype == torch.float32
    assert len(list(b)) == 6 and b.clone().tensor is not b.tensor
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        Boxes(torch.zeros(3, 5))
