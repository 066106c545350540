"""torch.export and ONNX (onnxruntime) export of every built-in architecture, dynamic in the image
size, against eager on two image sizes (shapes recipes, seeded random weights).

Each architecture is exported once per test: the torch.export program is checked (its outputs
equal eager's bit for bit), then (Faster / Mask R-CNN, RetinaNet) converted to ONNX and run by
onnxruntime (same classes, boxes within 1e-3, masks IoU >= 0.99), when the ``detrun[export]``
extra is installed.
"""
from __future__ import annotations

import importlib.util

import pytest
import torch

from detrun.export import ExportableModel, export_program, pad_images, run_exported

from export_testing import (ARCHITECTURES, IMAGE_SIZES, TRACE_SIZE, assert_same_instances, build, inputs_of,
                            program_against_eager)

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


# ONNX for the architectures the acceptance names (each conversion costs ~30 s of CPU); the
# others' ONNX files convert and run too (benchmarks and the CLI use the same path).
ONNX_CHECKED = ("faster_rcnn", "mask_rcnn", "retinanet")


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_export(name, tmp_path):
    model = build(name)
    program = export_program(model, height=TRACE_SIZE[0], width=TRACE_SIZE[1])
    check_program(model, program)
    if HAS_ONNX and name in ONNX_CHECKED:
        check_onnx(model, program, tmp_path / f"{name}.onnx")


def test_program_saves_and_loads(tmp_path):
    model = build("retinanet")
    program = export_program(model, height=TRACE_SIZE[0], width=TRACE_SIZE[1])
    torch.export.save(program, str(tmp_path / "model.pt2"))
    loaded = torch.export.load(str(tmp_path / "model.pt2")).module()
    images, sizes = pad_images(model, [x["image"] for x in inputs_of((90, 150), 3)])
    with torch.no_grad():
        expected = ExportableModel(model)(images, sizes)
        actual = loaded(images, sizes)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
