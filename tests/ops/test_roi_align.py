"""roi_align on every backend against torchvision.ops.roi_align (forward and backward)."""
import pytest
import torch
import torchvision

from detrun.ops import RoIAlign, roi_align

from ops_testing import cases_for, tiny

CASES = cases_for("roi_align")


def make_rois(k: int, n: int, h: int, w: int, scale: float, seed: int) -> torch.Tensor:
    """(k + 4, 5) rois in image pixels: random ones (some partly outside the map) plus one wholly
    outside, one of zero size, one inverted and one covering the whole map."""
    g = torch.Generator().manual_seed(seed)
    img_h, img_w = h / scale, w / scale
    ctr = (torch.rand(k, 2, generator=g) * 1.3 - 0.15) * torch.tensor([img_w, img_h])
    size = torch.rand(k, 2, generator=g) * 0.5 * torch.tensor([img_w, img_h])
    boxes = torch.cat([ctr - size / 2, ctr + size / 2], 1)
    special = torch.tensor([[img_w * 1.5, img_h * 1.5, img_w * 1.8, img_h * 1.9],  # outside
                            [3.0, 4.0, 3.0, 4.0],  # zero size
                            [10.0, 12.0, 4.0, 6.0],  # inverted
                            [0.0, 0.0, img_w, img_h]])
    boxes = torch.cat([boxes, special])
    batch = torch.randint(0, n, (len(boxes), 1), generator=g).float()
    return torch.cat([batch, boxes], 1)


def check(backend, device, x, rois, output_size, scale, sampling_ratio, aligned, atol=1e-5):
    """Forward and input gradient on `device` equal torchvision's on CPU (float32 reference)."""
    xr = x.detach().float().requires_grad_()
    ref = torchvision.ops.roi_align(xr, rois, output_size, scale, sampling_ratio, aligned)
    xb = x.detach().to(device).requires_grad_()
    out = roi_align(xb, rois.to(device), output_size, scale, sampling_ratio, aligned, backend=backend)
    assert out.shape == ref.shape and out.dtype == x.dtype
    torch.testing.assert_close(out.float().cpu(), ref, atol=atol, rtol=atol)
    weight = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    (ref * weight).sum().backward()
    (out.float() * weight.to(device)).sum().backward()
    assert xb.grad.dtype == x.dtype
    torch.testing.assert_close(xb.grad.float().cpu(), xr.grad, atol=atol * 4, rtol=atol * 4)


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
def test_matches_torchvision(backend, device, aligned, sampling_ratio):
    # The Triton interpreter runs each program as NumPy: a small map, few boxes and channels.
    small = tiny(backend)
    n, c, h, w = (2, 3, 12, 14) if small else (2, 16, 40, 52)
    cases = [(0.5, (3, 4))] if small else [(1.0, (7, 7)), (0.5, (14, 14)), (0.25, (3, 5))]
    for i, (scale, output_size) in enumerate(cases):
        x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(i))
        rois = make_rois(3 if small else 40, n, h, w, scale, seed=i)
        check(backend, device, x, rois, output_size, scale, sampling_ratio, aligned)


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("dtype, atol", [(torch.float16, 4e-3), (torch.bfloat16, 3e-2)])
def test_half_precision(backend, device, dtype, atol):
    x = torch.randn(1, 4, 10, 12, generator=torch.Generator().manual_seed(0)).to(dtype)
    check(backend, device, x, make_rois(4, 1, 10, 12, 1.0, seed=3), (3, 3), 1.0, 2, True, atol=atol)


@pytest.mark.parametrize("backend, device", CASES)
def test_noncontiguous_input_and_list_boxes(backend, device):
    base = torch.randn(2, 12, 9, 6, generator=torch.Generator().manual_seed(0))
    x = base.transpose(2, 3)[:, ::3]  # (2, 4, 6, 9), neither contiguous nor channels_last
    rois = make_rois(4, 2, 6, 9, 0.5, seed=5)
    check(backend, device, x, rois, (2, 3), 0.5, -1, False)
    x, rois = x.to(device), rois.to(device)
    as_list = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.nonzero(rois[:, 0] == i)[:, 0] for i in range(2)])
    torch.testing.assert_close(roi_align(x, as_list, (2, 3), 0.5, backend=backend),
                               roi_align(x, rois[order], (2, 3), 0.5, backend=backend))


@pytest.mark.parametrize("backend, device", CASES)
def test_no_boxes(backend, device):
    x = torch.randn(1, 3, 8, 8, device=device, requires_grad=True)
    out = roi_align(x, torch.zeros(0, 5, device=device), (7, 7), backend=backend)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert roi_align(x, [torch.zeros(0, 4, device=device)], 7, backend=backend).shape == (0, 3, 7, 7)


def test_module_and_errors():
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0]])
    m = RoIAlign(output_size=3, spatial_scale=0.5, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(m(x, rois), torchvision.ops.roi_align(x, rois, 3, 0.5, 2, True))
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        roi_align(x, torch.zeros(3, 4), 3)
    with pytest.raises(TypeError, match="floating"):
        roi_align(x.long(), rois, 3)


@pytest.mark.parametrize("backend, device", CASES)
def test_under_bf16_autocast(backend, device):
    # Autocast inference: float32 features give float32 results, bf16 features bf16 ones.
    x = torch.randn(2, 4, 12, 16, generator=torch.Generator().manual_seed(3))
    rois = make_rois(6, 2, 12, 16, 0.5, seed=4)
    ref = torchvision.ops.roi_align(x, rois, (3, 3), 0.5, 2, True)
    with torch.autocast(device, dtype=torch.bfloat16):
        out32 = roi_align(x.to(device), rois.to(device), 3, 0.5, 2, True, backend=backend)
        out16 = roi_align(x.to(device).bfloat16(), rois.to(device), 3, 0.5, 2, True, backend=backend)
    assert out32.dtype == torch.float32 and out16.dtype == torch.bfloat16
    torch.testing.assert_close(out32.cpu(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out16.float().cpu(), ref, atol=3e-2, rtol=3e-2)
