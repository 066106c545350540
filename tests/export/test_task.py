"""``task=export``: its one-line errors (its files are checked in test_export.py and test_predict_onnx.py)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from detrun.config import compose
from detrun.export import ExportError, check_exportable
from detrun.export.task import run_export
from detrun.modeling import GeneralizedRCNN

from export_testing import build


def test_bad_format_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "detrun", "task=export", "format=tflite",
                             f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: format='tflite' is not an export format; use one of: onnx, torch_export"


def test_onnx_without_the_extra_names_it(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ExportError, match=r"onnxscript: pip install 'detrun\[export\]'"):
        run_export(compose("shapes_retinanet", ["format=onnx"]), tmp_path)


def test_models_without_a_tensor_core_are_refused():
    class EagerOnly(GeneralizedRCNN):
        def raw_inference(self, images):
            return super().raw_inference(images)

    model = build("faster_rcnn")
    model.__class__ = EagerOnly
    with pytest.raises(ExportError, match="overrides raw_inference but not inference_tensors"):
        check_exportable(model)
    with pytest.raises(ExportError, match="only detrun meta-architectures"):
        check_exportable(torch.nn.Linear(2, 2))
