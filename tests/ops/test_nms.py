"""nms / batched_nms on every backend return exactly torchvision's indices."""
import pytest
import torch
import torchvision

from detrun.ops import batched_nms, nms

from ops_testing import cases_for, tiny

CASES = cases_for("nms")


def make_boxes(n: int, seed: int, clusters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """n boxes jittered around a few object centers (heavy overlap, like proposals) plus distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(clusters, 2, generator=g) * 600
    ctr = centers[torch.randint(0, clusters, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 15
    size = 20 + torch.rand(n, 2, generator=g) * 100
    boxes = torch.cat([ctr - size / 2, ctr + size / 2], 1)
    scores = torch.randperm(n, generator=g).float() / max(n, 1)
    return boxes, scores


def sizes(backend: str) -> list[int]:
    # The Triton interpreter runs each program as NumPy: one thousand boxes is its largest case.
    return [1, 7, 300, 1000] if tiny(backend) else [1, 7, 300, 3000]


def run_nms(backend, device, boxes, scores, threshold, idxs=None):
    """Our (batched) nms on `device`, indices back on CPU."""
    boxes, scores = boxes.to(device), scores.to(device)
    if idxs is None:
        return nms(boxes, scores, threshold, backend=backend).cpu()
    return batched_nms(boxes, scores, idxs.to(device), threshold, backend=backend).cpu()


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_nms_matches_torchvision(backend, device, threshold):
    for n in sizes(backend):
        boxes, scores = make_boxes(n, seed=n)
        keep = run_nms(backend, device, boxes, scores, threshold)
        assert keep.dtype == torch.int64
        assert torch.equal(keep, torchvision.ops.nms(boxes, scores, threshold)), n


@pytest.mark.parametrize("backend, device", CASES)
def test_batched_nms_matches_torchvision(backend, device):
    for n in sizes(backend):
        boxes, scores = make_boxes(n, seed=n + 1)
        idxs = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(n))
        keep = run_nms(backend, device, boxes, scores, 0.5, idxs)
        assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)), n


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # 0/0 IoU, as in torchvision
def test_empty_and_degenerate(backend, device):
    empty = torch.zeros(0, 4)
    assert run_nms(backend, device, empty, torch.zeros(0), 0.5).shape == (0,)
    assert run_nms(backend, device, empty, torch.zeros(0), 0.5, torch.zeros(0, dtype=torch.int64)).shape == (0,)
    # Zero-area and identical boxes: 0/0 IoU never suppresses; identical boxes do (IoU 1).
    boxes = torch.tensor([[5.0, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert torch.equal(run_nms(backend, device, boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


@pytest.mark.parametrize("backend, device", CASES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_boxes(backend, device, dtype):
    boxes, scores = make_boxes(200, seed=3)
    boxes = boxes.to(dtype)
    # Half boxes are compared in float32: same as torchvision on the float32 values.
    expected = torchvision.ops.nms(boxes.float(), scores, 0.5)
    assert torch.equal(run_nms(backend, device, boxes, scores, 0.5), expected)


@pytest.mark.parametrize("backend, device", CASES)
def test_threshold_compared_in_double_precision(backend, device):
    # IoU = 10 / 100 = float32(0.1) = 0.10000000149 > 0.1: torchvision compares the float32 IoU with
    # the double threshold and suppresses; comparing with the threshold rounded to float32 would not.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 1.0, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    expected = torchvision.ops.nms(boxes, scores, 0.1)
    assert expected.tolist() == [0]
    assert torch.equal(run_nms(backend, device, boxes, scores, 0.1), expected)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
