"""detrun's ops in ONNX (RoiAlign, NonMaxSuppression) under onnxruntime against the ops themselves."""
from __future__ import annotations

import pytest
import torch

from detrun.ops import batched_nms, nms, roi_align

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")

from detrun.export.onnx import translations  # noqa: E402


def run_onnx(module: torch.nn.Module, args: tuple, path, dynamic_shapes=None) -> list[torch.Tensor]:
    """Export `module` for `args` (through torch.export, as detectors are) and run it in onnxruntime."""
    program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    names = [f"in{i}" for i in range(len(args))]
    onnx_program = torch.onnx.export(program, args, input_names=names, dynamo=True, verbose=False,
                                     custom_translation_table=translations())
    onnx_program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
    return [torch.from_numpy(o) for o in outputs]


class RoIAlignModule(torch.nn.Module):
    def __init__(self, output_size, scale, sampling_ratio, aligned):
        super().__init__()
        self.args = (output_size, scale, sampling_ratio, aligned)

    def forward(self, x, rois):
        return roi_align(x, rois, *self.args)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, -1, 2])
def test_roi_align(aligned, sampling_ratio, tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 20, 24, generator=g)
    xy = torch.rand(30, 2, generator=g) * 60
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=g).float(), xy,
                      xy + torch.rand(30, 2, generator=g) * 40 + 0.5], 1)
    rois[0, 1:] = torch.tensor([5.0, 5.0, 5.2, 5.1])  # smaller than a cell: the unaligned op makes it 1x1
    module = RoIAlignModule((7, 6), 0.5, sampling_ratio, aligned)
    dims = {"x": None, "rois": {0: torch.export.Dim("k", min=2)}}
    (out,) = run_onnx(module, (x, rois), tmp_path / "roi_align.onnx", dims)
    torch.testing.assert_close(out, module(x, rois), rtol=1e-5, atol=1e-5)


class NMSModule(torch.nn.Module):
    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def forward(self, boxes, scores, idxs):
        return nms(boxes, scores, self.threshold), batched_nms(boxes, scores, idxs, self.threshold)


def make_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(8, 2, generator=g) * 200
    ctr = centers[torch.randint(0, 8, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 10
    size = 10 + torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([ctr - size / 2, ctr + size / 2], 1)
    scores = torch.rand(n, generator=g)
    scores[5:9] = scores[4]  # ties: broken by the lower index
    return boxes, scores, torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_nms_and_batched_nms(threshold, tmp_path):
    boxes, scores, idxs = make_boxes(300, seed=1)
    n = torch.export.Dim("n", min=2)
    module = NMSModule(threshold)
    path = tmp_path / "nms.onnx"
    program_args = (boxes, scores, idxs)
    keep, keep_batched = run_onnx(module, program_args, path, {"boxes": {0: n}, "scores": {0: n}, "idxs": {0: n}})
    expected, expected_batched = module(*program_args)
    assert torch.equal(keep, expected)
    assert torch.equal(keep_batched, expected_batched)
    # The same file on other inputs, including one with no boxes of class 0 and a single class.
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, n_boxes in ((2, 40), (3, 7)):
        boxes, scores, idxs = make_boxes(n_boxes, seed)
        idxs = idxs.clamp(min=2) if seed == 3 else idxs
        got = session.run(None, {"in0": boxes.numpy(), "in1": scores.numpy(), "in2": idxs.numpy()})
        expected, expected_batched = module(boxes, scores, idxs)
        assert torch.equal(torch.from_numpy(got[0]), expected)
        assert torch.equal(torch.from_numpy(got[1]), expected_batched)
