"""nms / batched_nms on every backend return exactly torchvision's indices."""
import pytest
import torch
import torchvision

from detrun.ops import batched_nms, dispatch, nms

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


def per_class_nms(boxes, scores, idxs, threshold):
    """Reference class-aware NMS: torchvision.ops.nms on each class alone, merged by decreasing
    score (ties by lower index)."""
    per_class = [torch.where(idxs == c)[0] for c in idxs.unique()]
    keep = [k[torchvision.ops.nms(boxes[k], scores[k], threshold)] for k in per_class]
    keep = torch.cat(keep + [idxs[:0].long()]).sort().values
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def ours(backend: str) -> bool:
    # The torchvision backend is torchvision itself; these tests check detrun's own implementations.
    return backend != "torchvision"


@pytest.mark.parametrize("backend, device", [c for c in CASES if ours(c.values[0])])
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")
def test_random_inputs_match_references(backend, device):
    # Boxes from a few pixels to 1e6 px wide (coordinates up to 5e6), integer coordinates (IoUs
    # exactly at the threshold), float64, zero-width boxes, thresholds from -0.1 to 1, 1-1000
    # classes with negative ids and int32 ids.
    g = torch.Generator().manual_seed(0)
    float64 = dispatch.covers("nms", backend, torch.float64)
    for trial in range(12 if tiny(backend) else 40):
        n = int(torch.randint(1, 120 if tiny(backend) else 1500, (1,), generator=g))
        scale = [10.0, 1000.0, 1e6][trial % 3]
        boxes, scores = make_boxes(n, seed=trial, clusters=max(n // 10, 1))
        boxes = boxes * (scale / 600)
        if trial % 4 == 1:
            boxes = boxes.round()
        if trial % 5 == 2:
            boxes[::7, 2] = boxes[::7, 0]
        if trial % 4 == 3 and float64:
            boxes, scores = boxes.double(), scores.double()
        threshold = [0.5, 0.7, 0.3, 0.0, 1.0, -0.1][trial % 6]
        expected = torchvision.ops.nms(boxes, scores, threshold)
        assert torch.equal(run_nms(backend, device, boxes, scores, threshold), expected), trial
        idxs = torch.randint(-3, [1, 5, 80, 1000][trial % 4], (n,), generator=g)
        if trial % 2:
            idxs = idxs.int()
        expected = per_class_nms(boxes, scores, idxs, threshold)
        assert torch.equal(run_nms(backend, device, boxes, scores, threshold, idxs), expected), trial


@pytest.mark.parametrize("backend, device", [c for c in CASES if ours(c.values[0])])
def test_score_ties_keep_lower_index_first(backend, device):
    g = torch.Generator().manual_seed(0)
    n = 300 if tiny(backend) else 3000
    boxes = (torch.rand(n, 4, generator=g) * 4).round()
    boxes[:, 2:] += boxes[:, :2] + 1
    scores = (torch.rand(n, generator=g) * 3).round()  # 4 distinct scores
    idxs = torch.randint(0, 4, (n,), generator=g)
    # Distinct scores in (score desc, index asc) order: the order ties are meant to be visited in.
    distinct = torch.empty(n)
    distinct[torch.sort(scores, descending=True, stable=True).indices] = -torch.arange(n, dtype=torch.float32)
    for threshold in (0.3, 0.5):
        assert torch.equal(run_nms(backend, device, boxes, scores, threshold),
                           torchvision.ops.nms(boxes, distinct, threshold))
        assert torch.equal(run_nms(backend, device, boxes, scores, threshold, idxs),
                           per_class_nms(boxes, distinct, idxs, threshold))
    # All boxes identical: the first of the best-scored ones survives.
    same = torch.tensor([[2.0, 3.0, 12.0, 13.0]]).repeat(n, 1)
    assert run_nms(backend, device, same, torch.ones(n), 0.5).tolist() == [0]
    assert run_nms(backend, device, same, torch.ones(n), 0.5, torch.arange(n) % 3).tolist() == [0, 1, 2]


@pytest.mark.parametrize("backend, device", [c for c in CASES if ours(c.values[0])])
def test_batched_nms_is_per_class_where_coordinate_offsets_round(backend, device):
    # IoU(box 0, box 1) = 0.50017 > 0.5: per-class NMS drops box 1. torchvision's batched_nms on
    # <= 1000 CPU boxes offsets each class by idx * (max coordinate + 1) = 100001 and runs one nms;
    # at that magnitude float32 rounds coordinates to 1/128, the IoU falls to <= 0.5 and box 1 stays.
    boxes = torch.tensor([[16.170745849609375, 3.762812614440918, 24.769763946533203, 8.780290603637695],
                          [15.885401725769043, 3.2834391593933105, 23.327550888061523, 11.957966804504395],
                          [0.0, 0.0, 100000.0, 1.0]])
    scores, idxs = torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1, 1, 0])
    assert per_class_nms(boxes, scores, idxs, 0.5).tolist() == [0, 2]
    assert run_nms(backend, device, boxes, scores, 0.5, idxs).tolist() == [0, 2]


@pytest.mark.parametrize("backend, device", [c for c in CASES if ours(c.values[0])])
def test_chains_of_suppression(backend, device):
    # Each box suppresses the next one only: 0 kept, 1 dropped, 2 kept, ... The greedy order
    # matters along the whole chain (the torch backend settles one link per vectorized round, then
    # finishes in one sequential pass).
    n = 200 if tiny(backend) else 2000
    x = torch.arange(n, dtype=torch.float32) * 4
    boxes = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    for scores in (-x, x, torch.rand(n, generator=torch.Generator().manual_seed(0))):
        expected = torchvision.ops.nms(boxes, scores, 0.3)
        assert torch.equal(run_nms(backend, device, boxes, scores, 0.3), expected)


@pytest.mark.parametrize("backend, device", CASES)
def test_bf16_scores_under_autocast(backend, device):
    # bf16 autocast inference may hand over bf16 scores: ranked as their float32 values.
    boxes, scores = make_boxes(300, seed=5)
    scores = scores.bfloat16()
    idxs = torch.randint(0, 5, (300,), generator=torch.Generator().manual_seed(5))
    with torch.autocast(device, dtype=torch.bfloat16):
        keep = run_nms(backend, device, boxes, scores, 0.5)
        keep_batched = run_nms(backend, device, boxes, scores, 0.5, idxs)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores.float(), 0.5))
    assert torch.equal(keep_batched, torchvision.ops.batched_nms(boxes, scores.float(), idxs, 0.5))
