"""The registered ops: `torch.library.opcheck` (schema, fake kernels vs the real kernels, autograd
registration, AOT dispatch with dynamic shapes) on every backend, and what the wrappers pass."""
import pytest
import torch

from detrun.ops import batched_nms, dispatch, library, nms, paste_masks, roi_align

from ops_testing import cases_for, tiny

# opcheck's AOT test traces the ops with dynamic shapes: the NMS length is data-dependent.
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _rois(k: int, n: int, size: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g) * size * 0.8
    wh = torch.rand(k, 2, generator=g) * size * 0.5 + 1
    batch = torch.randint(0, n, (k, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], 1)


def _boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], 1)
    return boxes, torch.rand(n, generator=g)


def _opcheck(op, args, backend, device):
    torch.library.opcheck(op, args, test_utils=OPCHECK_UTILS)


@pytest.mark.parametrize("backend, device", cases_for("roi_align"))
@pytest.mark.parametrize("aligned", [False, True])
def test_opcheck_roi_align(backend, device, aligned):
    small = tiny(backend)
    x = torch.randn(2, 3 if small else 8, 12, 14, device=device, requires_grad=True)
    rois = _rois(3 if small else 20, 2, 20, seed=1).to(device)
    for k in (rois, rois[:0]):
        _opcheck(torch.ops.detrun.roi_align.default, (x, k, 0.5, 3, 4, -1 if aligned else 2, aligned, backend),
                 backend, device)


@pytest.mark.parametrize("backend, device", cases_for("roi_align"))
def test_opcheck_roi_align_backward(backend, device):
    grad = torch.randn(5, 4, 3, 3, device=device)
    rois = _rois(5, 2, 20, seed=2).to(device)
    _opcheck(torch.ops.detrun.roi_align_backward.default, (grad, rois, 0.5, 3, 3, 2, True, 2, 4, 10, 11, backend),
             backend, device)


@pytest.mark.parametrize("backend, device", cases_for("nms"))
def test_opcheck_nms(backend, device):
    for n in (0, 1, 40):
        boxes, scores = (t.to(device) for t in _boxes(n, seed=n))
        idxs = torch.arange(n, device=device) % 3
        _opcheck(torch.ops.detrun.nms.default, (boxes, scores, 0.5, backend), backend, device)
        _opcheck(torch.ops.detrun.batched_nms.default, (boxes, scores, idxs, 0.5, backend), backend, device)


@pytest.mark.parametrize("backend, device", cases_for("paste_masks"))
@pytest.mark.parametrize("threshold", [0.5, None])
def test_opcheck_paste_masks(backend, device, threshold):
    boxes, _ = _boxes(6, seed=3)
    masks = torch.rand(6, 7, 7)
    _opcheck(torch.ops.detrun.paste_masks.default, (masks.to(device), boxes.to(device), 40, 45, threshold, backend),
             backend, device)


def test_opcheck_automatic_backend():
    """"" (what exported graphs hold) resolves per device and dtype when the op runs."""
    x = torch.randn(1, 4, 10, 10, requires_grad=True)
    torch.library.opcheck(torch.ops.detrun.roi_align.default, (x, _rois(6, 1, 20, 0), 0.5, 2, 2, 0, True, ""),
                          test_utils=OPCHECK_UTILS)
    boxes, scores = _boxes(30, seed=4)
    torch.library.opcheck(torch.ops.detrun.batched_nms.default, (boxes, scores, torch.arange(30) % 2, 0.6, ""),
                          test_utils=OPCHECK_UTILS)


def test_wrappers_call_the_registered_ops(monkeypatch):
    """The Python functions reach torch.ops.detrun.* with "" unless a backend was named or the
    gradient policy (CPU training: torch roi_align) differs from the resolved choice."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    dispatch.reset()
    seen = []

    def spy(name):
        packet = getattr(torch.ops.detrun, name)
        real = packet.default

        def call(*args):
            seen.append((name, args[-1]))
            return real(*args)
        monkeypatch.setattr(torch.ops.detrun, name, type("Spy", (), {"__call__": staticmethod(call),
                                                                        "default": real})())
    for name in ("roi_align", "nms", "batched_nms", "paste_masks"):
        spy(name)
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]])
    roi_align(x, rois, 2)
    assert roi_align(x.requires_grad_(), rois, 2).grad_fn is not None
    roi_align(x, rois, 2, backend="torchvision")
    boxes, scores = _boxes(5, seed=0)
    nms(boxes, scores, 0.5)
    batched_nms(boxes, scores, torch.zeros(5, dtype=torch.int64), 0.5, backend="torch")
    paste_masks(torch.rand(5, 4, 4), boxes, (20, 20))
    # (the second roi_align, eager CPU training, runs the torch fallback under autograd directly)
    assert seen == [("roi_align", ""), ("roi_align", "torchvision"), ("nms", ""), ("batched_nms", "torch"),
                    ("paste_masks", "")]


def test_resolved_once(monkeypatch):
    """The env var is read when a choice is first resolved, not on every call; reset() re-reads it."""
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    dispatch.reset()
    try:
        assert dispatch.resolve("nms", torch.device("cpu"), torch.float32) == "torch"
        monkeypatch.setenv(dispatch.ENV_VAR, "torchvision")
        assert dispatch.resolve("nms", torch.device("cpu"), torch.float32) == "torch"
        dispatch.reset()
        assert dispatch.resolve("nms", torch.device("cpu"), torch.float32) == "torchvision"
    finally:
        monkeypatch.undo()
        dispatch.reset()


def test_backend_argument_is_checked():
    with pytest.raises(dispatch.OpsBackendError, match="not an ops backend"):
        torch.ops.detrun.nms(torch.zeros(1, 4), torch.zeros(1), 0.5, "fast")
    with pytest.raises(dispatch.OpsBackendError, match="no paste_masks"):
        torch.ops.detrun.paste_masks(torch.zeros(1, 4, 4), torch.zeros(1, 4), 5, 5, 0.5, "torchvision")


@pytest.mark.parametrize("backend, device", [c for c in cases_for("roi_align") if c.values[0] != "triton"])
def test_roi_align_gradient_through_the_op(backend, device):
    """The registered backward equals autograd through the torch fallback (the reference)."""
    x = torch.randn(2, 5, 16, 18, dtype=torch.float64, device=device, requires_grad=True)
    rois = _rois(12, 2, 30, seed=7).to(device)
    out = torch.ops.detrun.roi_align(x, rois, 0.5, 4, 3, 0, True, backend)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    x_ref = x.detach().cpu().requires_grad_()
    from detrun.ops.roi_align_torch import roi_align_torch
    (ref,) = torch.autograd.grad(roi_align_torch(x_ref, rois.cpu(), (4, 3), 0.5, 0, True), x_ref, g.cpu())
    # torchvision samples in the input's dtype (float64 here), the fallback in float32.
    torch.testing.assert_close(grad.cpu(), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", [c.values[1] for c in cases_for("roi_align") if c.values[0] == "triton"])
def test_opcheck_triton_ops(device):
    """The Triton backend's triton_ops (what torch.compile traces into on GPUs)."""
    reason = dispatch.unavailable_reason("triton", torch.device(device))
    if reason:
        pytest.skip(reason)
    ops = library.triton_ops()
    # Under TRITON_INTERPRET=1 the fake kernel (the launcher itself) would run the interpreter on
    # fake tensors: there only the schema and autograd checks; the full check on GPUs.
    utils = OPCHECK_UTILS if device == "cuda" else ("test_schema", "test_autograd_registration")
    x = torch.randn(2, 3, 12, 14, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.detrun.roi_align_triton.default,
                          (x, _rois(4, 2, 20, seed=1).to(device), 0.5, 3, 4, 2, True), test_utils=utils)
    boxes, scores = (t.to(device) for t in _boxes(30, seed=5))
    torch.library.opcheck(torch.ops.detrun.nms_triton.default, (boxes, scores, 0.5, torch.arange(30, device=device) % 2),
                          test_utils=utils)
    torch.library.opcheck(torch.ops.detrun.paste_masks_triton.default,
                          (torch.rand(30, 5, 5, device=device), boxes, 30, 40, 0.5), test_utils=utils)
    assert ops.roi_align is not None
