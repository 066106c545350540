"""Box coder and regression losses vs torchvision's BoxCoder and GIoU loss."""
import math

import pytest
import torch
from torch.nn import functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import generalized_box_iou_loss

from detrun.modeling.box_regression import Box2BoxTransform, box_regression_loss, giou_loss


def _random_boxes(n, gen, scale=200.0, min_size=1.0):
    xy = torch.rand(n, 2, generator=gen) * scale
    wh = torch.rand(n, 2, generator=gen) * scale + min_size
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_match_torchvision(weights):
    gen = torch.Generator().manual_seed(0)
    src, tgt = _random_boxes(500, gen), _random_boxes(500, gen)
    ours = Box2BoxTransform(weights=weights)
    ref = BoxCoder(weights)
    deltas = ours.get_deltas(src, tgt)
    torch.testing.assert_close(deltas, ref.encode_single(tgt, src), rtol=0, atol=0)
    # Class-specific deltas (3 boxes per reference box), large enough to hit the clamp.
    many = torch.randn(500, 12, generator=gen) * 3
    torch.testing.assert_close(ours.apply_deltas(many, src), ref.decode_single(many, src), rtol=0, atol=0)
    # Round trip, within the clamp (sizes change less than 1000/16 x).
    src, tgt = _random_boxes(500, gen, min_size=20.0), _random_boxes(500, gen, min_size=20.0)
    torch.testing.assert_close(ours.apply_deltas(ours.get_deltas(src, tgt), src), tgt, rtol=1e-5, atol=1e-3)


def test_scale_clamp_limits_growth():
    coder = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    box = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = coder.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), box)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 2] - out[0, 0], torch.tensor(16.0 * 1000 / 16), rtol=1e-5, atol=0)
    assert coder.scale_clamp == pytest.approx(math.log(1000 / 16))


def test_half_deltas_decode_in_float32():
    coder = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
    out = coder.apply_deltas(torch.zeros(2, 4, dtype=torch.bfloat16), torch.tensor([[0.0, 0, 10, 10], [5, 5, 9, 9]]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[0.0, 0, 10, 10], [5, 5, 9, 9]]))


def test_giou_loss_matches_torchvision():
    gen = torch.Generator().manual_seed(1)
    a, b = _random_boxes(300, gen), _random_boxes(300, gen)
    torch.testing.assert_close(giou_loss(a, b), generalized_box_iou_loss(a, b, eps=1e-7), rtol=1e-5, atol=1e-6)
    assert giou_loss(a, a).abs().max() < 1e-5


def test_box_regression_loss_smooth_l1_and_giou():
    gen = torch.Generator().manual_seed(2)
    coder = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
    src, gt = _random_boxes(50, gen), _random_boxes(50, gen)
    pred = torch.randn(50, 4, generator=gen, requires_grad=True)
    l1 = box_regression_loss(coder, src, pred, gt, loss_type="smooth_l1", smooth_l1_beta=0.0)
    torch.testing.assert_close(l1, (pred - coder.get_deltas(src, gt)).abs().sum())
    beta = box_regression_loss(coder, src, pred, gt, loss_type="smooth_l1", smooth_l1_beta=1 / 9)
    torch.testing.assert_close(beta, F.smooth_l1_loss(pred, coder.get_deltas(src, gt), beta=1 / 9, reduction="sum"))
    giou = box_regression_loss(coder, src, pred, gt, loss_type="giou")
    torch.testing.assert_close(giou, generalized_box_iou_loss(coder.apply_deltas(pred, src), gt, reduction="sum"))
    (l1 + giou).backward()
    assert pred.grad.abs().sum() > 0
    # No foreground: zero, still differentiable.
    empty = box_regression_loss(coder, src[:0], pred[:0], gt[:0])
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ValueError, match="smooth_l1"):
        box_regression_loss(coder, src, pred, gt, loss_type="l2")
