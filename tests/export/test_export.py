"""torch.export and ONNX (onnxruntime) export of every built-in architecture, dynamic in the image
size, against eager on two image sizes (shapes recipes, seeded random weights).

Each architecture is exported once per test: the torch.export program is checked (its outputs
equal eager's bit for bit), then (Faster R-CNN, RetinaNet) converted to ONNX and run by
onnxruntime (same classes, boxes within 1e-3, masks IoU >= 0.99), when the ``detrun[export]``
extra is installed. An export costs 10-15 s of CPU and an ONNX conversion 25-35 s, so none is
made twice: RetinaNet's program is the one ``task=export format=torch_export`` writes (its file
loaded back gives the same outputs), Mask R-CNN's program and ONNX parity are test_predict_onnx.py's
(``task=export format=onnx`` then ``task=predict``, the same seeded model). Mask R-CNN here,
Keypoint and Cascade R-CNN (not among the architectures CI must check) run with
``DETRUN_SLOW_TESTS=1``.
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from detrun.config import compose
from detrun.export import ExportableModel, export_program, pad_images, run_exported
from detrun.export.task import run_export

from export_testing import (ARCHITECTURES, IMAGE_SIZES, TRACE_SIZE, assert_same_instances, build, inputs_of,
                            check_program, slow)

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


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
CI_CHECKED = ("faster_rcnn", "retinanet")


def task_program(name: str, tmp_path) -> torch.export.ExportedProgram:
    """``task=export format=torch_export``'s program of `build(name)`'s model (the same seeded
    weights), after checking the file it wrote: its description, and its outputs once loaded back."""
    recipe, overrides = ARCHITECTURES[name]
    path = tmp_path / "out" / "m.pt2"
    torch.manual_seed(0)  # build()'s seed
    program = run_export(compose(recipe, [*overrides, "task=export", "format=torch_export", f"output={path}"]),
                         tmp_path)
    meta = json.loads(path.with_name("m.pt2.json").read_text())
    assert meta["size_divisibility"] == 32 and meta["outputs"][:4] == ["boxes", "scores", "classes", "counts"]
    model = build(name)
    images, sizes = pad_images(model, [x["image"] for x in inputs_of((150, 170), 4)])
    with torch.no_grad():
        expected, actual = ExportableModel(model)(images, sizes), torch.export.load(str(path)).module()(images, sizes)
    assert len(expected["boxes"]) and all(torch.equal(expected[k], actual[k]) for k in expected)
    return program


@pytest.mark.parametrize("name", [n if n in CI_CHECKED else pytest.param(n, marks=slow) for n in ARCHITECTURES])
def test_export(name, tmp_path):
    model = build(name)
    if name == "retinanet":
        program = task_program(name, tmp_path)
    else:
        program = export_program(model, height=TRACE_SIZE[0], width=TRACE_SIZE[1])
    check_program(model, program)
    if HAS_ONNX and name in ONNX_CHECKED:
        check_onnx(model, program, tmp_path / f"{name}.onnx")
