"""The ops under torch.compile: Dynamo traces the Python wrappers and the registered ops (fake
kernels, autograd) into one graph, with eager's results."""
import pytest
import torch

from detrun.ops import batched_nms, nms, paste_masks, roi_align


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_roi_align_forward_and_backward():
    def f(x, rois):
        return roi_align(x, rois, (3, 4), 0.5, 0, True)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10, 12, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 9.0, 11.0], [1, 3.0, 0.5, 20.0, 15.0], [0, 0.0, 0.0, 4.0, 4.0]])
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        assert torch.equal(compiled(x, rois), f(x, rois))
    # With a gradient, under compile the registered op and its backward (the torch fallback's on CPU).
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    weight = torch.randn(3, 3, 3, 4, generator=g)
    (f(xa, rois) * weight).sum().backward()
    (compiled(xb, rois) * weight).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)


def test_nms_paste_masks_in_one_graph(monkeypatch):
    # nms returns a data-dependent length: Dynamo keeps it in the graph with this setting.
    monkeypatch.setattr(torch._dynamo.config, "capture_dynamic_output_shape_ops", True)

    def f(boxes, scores, classes, masks):
        keep = batched_nms(boxes, scores, classes, 0.5)
        keep = keep[nms(boxes[keep], scores[keep], 0.3)]
        return keep, paste_masks(masks[keep], boxes[keep], (40, 50))

    g = torch.Generator().manual_seed(1)
    xy = torch.rand(30, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + 4 + torch.rand(30, 2, generator=g) * 15], 1)
    scores, classes, masks = torch.rand(30, generator=g), torch.arange(30) % 3, torch.rand(30, 7, 7, generator=g)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    for expected, actual in zip(f(boxes, scores, classes, masks), compiled(boxes, scores, classes, masks)):
        assert torch.equal(expected, actual)
