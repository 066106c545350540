"""paste_masks on every backend against a slow per-pixel bilinear reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from detrun.ops import paste_masks

from ops_testing import cases_for

CASES = cases_for("paste_masks")


def paste(backend, device, masks, boxes, size, threshold=0.5):
    """Our paste_masks on `device`, result back on CPU."""
    return paste_masks(masks.to(device), boxes.to(device), size, threshold, backend=backend).cpu()


def reference(masks: torch.Tensor, boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-pixel float64 loop over the documented definition (zero outside the mask)."""
    out = torch.zeros(len(masks), h, w, dtype=torch.float64)
    m = masks.double()
    for r, (x1, y1, x2, y2) in enumerate(boxes.double().tolist()):
        mh, mw = m.shape[1:]
        if not (x2 > x1 and y2 > y1 and math.isfinite(x2 - x1) and math.isfinite(y2 - y1)):
            continue

        def cell(i, j):
            return m[r, i, j].item() if 0 <= i < mh and 0 <= j < mw else 0.0

        for y in range(h):
            v = (y + 0.5 - y1) / (y2 - y1) * mh - 0.5
            v0 = math.floor(v)
            fv = v - v0
            for x in range(w):
                u = (x + 0.5 - x1) / (x2 - x1) * mw - 0.5
                u0 = math.floor(u)
                fu = u - u0
                out[r, y, x] = ((1 - fv) * ((1 - fu) * cell(v0, u0) + fu * cell(v0, u0 + 1))
                                + fv * ((1 - fu) * cell(v0 + 1, u0) + fu * cell(v0 + 1, u0 + 1)))
    return out


def make_case(seed: int, m: tuple[int, int] = (8, 8)):
    """Masks with full-probability borders (touching their box edges) and boxes partly outside,
    wholly outside, larger than the image, tiny, of zero width, and with nan coordinates."""
    g = torch.Generator().manual_seed(seed)
    h, w = 23, 31
    boxes = torch.tensor([[3.3, 2.7, 17.9, 15.2], [-6.0, -4.5, 9.5, 8.0], [20.2, 14.1, 40.0, 30.0],
                          [35.0, 25.0, 50.0, 33.0], [-10.0, -8.0, 45.0, 36.0], [7.0, 7.0, 8.5, 8.2],
                          [5.0, 5.0, 5.0, 12.0], [float("nan"), 1.0, 4.0, 6.0]])
    masks = torch.rand(len(boxes), *m, generator=g)
    masks[:2, 0, :] = 1.0
    masks[:2, :, -1] = 1.0
    return masks, boxes, (h, w)


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("mask_size", [(8, 8), (5, 7)])
def test_probabilities_match_reference(backend, device, mask_size):
    masks, boxes, (h, w) = make_case(0, mask_size)
    out = paste(backend, device, masks, boxes, (h, w), threshold=None)
    assert out.shape == (len(masks), h, w) and out.dtype == masks.dtype
    torch.testing.assert_close(out.double(), reference(masks, boxes, h, w), atol=2e-6, rtol=0)


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_threshold_matches_reference(backend, device, threshold):
    masks, boxes, (h, w) = make_case(1)
    out = paste(backend, device, masks, boxes, (h, w), threshold=threshold)
    ref = reference(masks, boxes, h, w)
    assert out.dtype == torch.bool
    # Float32 rounding may flip only pixels within a hair of the threshold.
    decided = (ref - threshold).abs() > 1e-6
    assert torch.equal(out[decided], (ref >= threshold)[decided])
    assert out.any() and out[:, 0, :].any()  # masks reach the image border


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("dtype, atol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_half_precision(backend, device, dtype, atol):
    masks, boxes, (h, w) = make_case(2)
    out = paste(backend, device, masks.to(dtype), boxes, (h, w), threshold=None)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), reference(masks.to(dtype), boxes, h, w), atol=atol, rtol=0)


@pytest.mark.parametrize("backend, device", CASES)
def test_no_masks_and_channel_dim(backend, device):
    assert paste(backend, device, torch.zeros(0, 28, 28), torch.zeros(0, 4), (10, 12)).shape == (0, 10, 12)
    masks, boxes, (h, w) = make_case(3)
    torch.testing.assert_close(paste(backend, device, masks[:, None], boxes, (h, w)),
                               paste(backend, device, masks, boxes, (h, w)))


def test_torch_backend_equals_grid_sample_on_a_large_image():
    # Detectron2 pastes with F.grid_sample(align_corners=False) over the whole image: same semantics.
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(20, 28, 28, generator=g)
    xy = torch.rand(20, 2, generator=g) * torch.tensor([300.0, 200.0]) - 20
    boxes = torch.cat([xy, xy + 5 + torch.rand(20, 2, generator=g) * 150], 1)
    h, w = 200, 300
    gx = ((torch.arange(w) + 0.5)[None] - boxes[:, :1]) / (boxes[:, 2:3] - boxes[:, :1]) * 2 - 1
    gy = ((torch.arange(h) + 0.5)[None] - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]) * 2 - 1
    grid = torch.stack([gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)], dim=3)
    expected = F.grid_sample(masks[:, None], grid, align_corners=False)[:, 0]
    torch.testing.assert_close(paste_masks(masks, boxes, (h, w), None, backend="torch"), expected,
                               atol=1e-5, rtol=0)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"boxes must be \(2, 4\)"):
        paste_masks(torch.zeros(2, 5, 5), torch.zeros(3, 4), (4, 4))
    with pytest.raises(ValueError, match="masks must be"):
        paste_masks(torch.zeros(5, 5), torch.zeros(5, 4), (4, 4))


@pytest.mark.parametrize("backend, device", CASES)
def test_bf16_masks_under_autocast_match_float32(backend, device):
    # bf16 autocast inference hands bf16 mask probabilities to paste_masks; sampling stays float32.
    masks, boxes, (h, w) = make_case(4)
    masks = masks.bfloat16()
    expected = paste(backend, device, masks.float(), boxes, (h, w), threshold=None)
    with torch.autocast(device, dtype=torch.bfloat16):
        probs = paste(backend, device, masks, boxes, (h, w), threshold=None)
        on = paste(backend, device, masks, boxes, (h, w))
    assert probs.dtype == torch.bfloat16 and on.dtype == torch.bool
    torch.testing.assert_close(probs.float(), expected, atol=4e-3, rtol=0)  # bf16 rounding of the output
    assert torch.equal(on, expected >= 0.5)
