"""torch.export and ONNX (onnxruntime) export of every built-in architecture, dynamic in the image
size, against eager on two image sizes (shapes recipes, seeded random weights).

Each architecture is exported once per test: the torch.export program is checked (its outputs
equal eager's bit for bit), then (Faster R-CNN, RetinaNet) converted to ONNX and run by
onnxruntime (same classes, boxes within 1e-3, masks IoU >= 0.99), when the ``detrun[export]``
extra is installed. Mask R-CNN's ONNX parity is test_predict_onnx.py's (``task=export`` then
``task=predict``, the same seeded model): each conversion costs 20-30 s of CPU, so none is made
twice. test_task.py checks a program saved by ``task=export format=torch_export`` and loaded back.
Keypoint and Cascade R-CNN (not among the architectures CI must check, ~25 s together) run with
``DETRUN_SLOW_TESTS=1``.
"""
from __future__ import annotations

import importlib.util

import pytest
import torch

from detrun.export import export_program, run_exported

from export_testing import (ARCHITECTURES, IMAGE_SIZES, TRACE_SIZE, assert_same_instances, build, inputs_of,
                            program_against_eager, slow)

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


def check_program(model, program) -> None:
    for _, outputs, eager, exported in program_against_eager(model, program):
        assert len(outputs["boxes"]) > 0, "the test needs detections"
        assert_same_instances(eager["instances"], exported["instances"], exact=True)


def check_onnx(model, program, path) -> None:
    from detrun.export import OnnxModel, export_onnx

    names = export_onnx(model, path, height=TRACE_SIZE[0], width=TRACE_SIZE[1], program=program)
    runtime = OnnxModel(path)
    assert runtime.output_names == names
    for seed, size in enumerate(IMAGE_SIZES):
        inputs = inputs_of(size, seed + 10, output_scale=1.5 if seed else 1.0)
        with torch.no_grad():
            eager = model(inputs)
        exported = run_exported(model, runtime, inputs)
        assert_same_instances(eager[0]["instances"], exported[0]["instances"], exact=False)


# ONNX here for the architectures the acceptance names but Mask R-CNN (see the docstring); the
# others' ONNX files convert and run too (benchmarks and the CLI use the same path).
ONNX_CHECKED = ("faster_rcnn", "retinanet")
CI_CHECKED = ("faster_rcnn", "mask_rcnn", "retinanet")


@pytest.mark.parametrize("name", [n if n in CI_CHECKED else pytest.param(n, marks=slow) for n in ARCHITECTURES])
def test_export(name, tmp_path):
    model = build(name)
    program = export_program(model, height=TRACE_SIZE[0], width=TRACE_SIZE[1])
    check_program(model, program)
    if HAS_ONNX and name in ONNX_CHECKED:
        check_onnx(model, program, tmp_path / f"{name}.onnx")
