"""torch.export and ONNX (onnxruntime) export of PanopticFPN and SemanticSegmentor, dynamic in the
image size, against eager on two image sizes (the shapes panoptic recipe, seeded random weights).

The exported core returns the semantic logits (and PanopticFPN's detections); the panoptic
combination runs on top of it, in `postprocess`, as for the eager model. The torch.export
program's outputs equal eager's bit for bit, so the panoptic results built on them do too;
onnxruntime's semantic logits are within 1e-3 of eager's. With a custom part that has no tensor-only
inference, PanopticFPN still runs eagerly (same results) and refuses export by name.
"""
from __future__ import annotations

import importlib.util

import pytest
import torch
from omegaconf import OmegaConf

from detrun.config import compose, instantiate
from detrun.export import ExportError, export_program, run_exported

from export_testing import IMAGE_SIZES, TRACE_SIZE, assert_same_instances, inputs_of, program_against_eager

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
# Random weights score every detection ~0.35: a 0.2 threshold lets instances into the panoptic
# output, a small stuff area keeps the stuff regions of these small images.
PANOPTIC_OVERRIDES = ["model.combine_instances_score_thresh=0.2", "model.combine_stuff_area_thresh=64"]


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """``panoptic``: the shapes_panoptic_fpn model; ``semantic``: a SemanticSegmentor of its backbone
    and semantic head."""
    cfg = compose("shapes_panoptic_fpn", PANOPTIC_OVERRIDES).model
    if name == "semantic":
        keep = ("backbone", "sem_seg_head", "pixel_mean", "pixel_std", "input_format")
        cfg = OmegaConf.create({"_target_": "detrun.modeling.SemanticSegmentor",
                                **{k: OmegaConf.to_container(cfg, resolve=True)[k] for k in keep}})
    torch.manual_seed(seed)
    return instantiate(cfg).eval()


def assert_same_results(expected: dict, actual: dict, *, exact: bool) -> None:
    """Identical semantic scores, instances and panoptic segments (exact), or semantic scores
    within 1e-3 (onnxruntime, checked on the semantic segmentor)."""
    assert expected.keys() == actual.keys()
    if not exact:
        torch.testing.assert_close(actual["sem_seg"], expected["sem_seg"], rtol=1e-3, atol=1e-3)
        return
    assert torch.equal(expected["sem_seg"], actual["sem_seg"])
    if "instances" in expected:
        assert_same_instances(expected["instances"], actual["instances"], exact=True)
    if "panoptic_seg" in expected:
        (ids, segments), (other_ids, other_segments) = expected["panoptic_seg"], actual["panoptic_seg"]
        assert any(s["isthing"] for s in segments) and any(not s["isthing"] for s in segments)
        assert torch.equal(ids, other_ids) and segments == other_segments


def check_program(model, program) -> None:
    for inputs, outputs, eager, exported in program_against_eager(model, program):
        padded = [-(-side // 32) * 32 for side in inputs[0]["image"].shape[-2:]]
        assert list(outputs["sem_seg"].shape[-2:]) == padded
        assert eager["sem_seg"].shape[-2:] == (inputs[0]["height"], inputs[0]["width"])
        assert_same_results(eager, exported, exact=True)


def check_onnx(model, program, path) -> None:
    from detrun.export import OnnxModel, export_onnx

    names = export_onnx(model, path, height=TRACE_SIZE[0], width=TRACE_SIZE[1], program=program)
    assert "sem_seg" in names
    runtime = OnnxModel(path)
    for seed, size in enumerate(IMAGE_SIZES):
        inputs = inputs_of(size, seed + 10, output_scale=1.5 if seed else 1.0)
        with torch.no_grad():
            eager = model(inputs)
        assert_same_results(eager[0], run_exported(model, runtime, inputs)[0], exact=False)


# ONNX for the semantic segmentor only: PanopticFPN's ONNX graph is Mask R-CNN's (checked in
# test_export.py) plus this semantic head, and its conversion alone costs ~45 s of CPU.
@pytest.mark.parametrize(("name", "onnx"), [("semantic", True), ("panoptic", False)])
def test_export(name, onnx, tmp_path):
    model = build(name)
    program = export_program(model, height=TRACE_SIZE[0], width=TRACE_SIZE[1])
    check_program(model, program)
    if onnx and HAS_ONNX:
        check_onnx(model, program, tmp_path / f"{name}.onnx")


class InstancesOnlyProposals(torch.nn.Module):
    """A proposal generator with only the Instances API (no `predict_proposals`), as a custom part may be."""

    def __init__(self, rpn: torch.nn.Module):
        super().__init__()
        self.rpn = rpn

    def forward(self, images, features, gt_instances=None):
        return self.rpn(images, features, gt_instances)


def test_a_part_without_the_tensor_core_runs_eager_but_does_not_export():
    model = build("panoptic")
    inputs = inputs_of(IMAGE_SIZES[0], 0)
    with torch.no_grad():
        expected = model(inputs)[0]
        model.proposal_generator = InstancesOnlyProposals(model.proposal_generator).eval()
        actual = model(inputs)[0]
    assert_same_results(expected, actual, exact=True)
    with pytest.raises(ExportError, match="InstancesOnlyProposals has no predict_proposals"):
        export_program(model)
