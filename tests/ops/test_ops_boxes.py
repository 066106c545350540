"""Box helpers against torchvision.ops."""
import pytest
import torch
import torchvision

from detrun.ops import box_area, box_convert, box_iou, clip_boxes_to_image, remove_small_boxes


def random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100 - 10
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 50], 1)


def test_area_and_iou():
    a, b = random_boxes(30, 0), random_boxes(20, 1)
    torch.testing.assert_close(box_area(a), torchvision.ops.box_area(a))
    torch.testing.assert_close(box_iou(a, b), torchvision.ops.box_iou(a, b))
    assert box_iou(a, torch.zeros(0, 4)).shape == (30, 0)


def test_clip_and_remove_small():
    boxes = random_boxes(40, 2)
    expected = torchvision.ops.clip_boxes_to_image(boxes, (50, 60))
    torch.testing.assert_close(clip_boxes_to_image(boxes, (50, 60)), expected)
    assert torch.equal(remove_small_boxes(boxes, 12.0), torchvision.ops.remove_small_boxes(boxes, 12.0))


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_convert(fmt):
    boxes = random_boxes(10, 3)
    converted = box_convert(boxes, "xyxy", fmt)
    torch.testing.assert_close(converted, torchvision.ops.box_convert(boxes, "xyxy", fmt))
    torch.testing.assert_close(box_convert(converted, fmt, "xyxy"), boxes)
    with pytest.raises(ValueError, match="unknown"):
        box_convert(boxes, "xyxy", "yxyx")
