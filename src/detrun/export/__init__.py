"""Export: `torch.export` programs and ONNX files of detectors, and onnxruntime inference.

- `export_program(model)`: ``torch.export.export`` of the model's tensor-only inference core
  (`MetaArchitecture.inference_tensors`) behind `ExportableModel` (raw padded images and image
  sizes in, detections as tensors out), dynamic in the image size.
- `export_onnx(model, path)`: that program as an ONNX file; detrun's ops map to ONNX's
  ``RoiAlign`` and ``NonMaxSuppression`` (`detrun.export.onnx`). Needs ``detrun[export]``.
- `OnnxModel(path)`: the file under onnxruntime, called like `ExportableModel`.
- `results_from_outputs(model, outputs, ...)`: any of them's outputs as the eager model's
  results (``Instances``, masks pasted, at each input's size).
- ``python -m detrun task=export format=onnx|torch_export`` (`detrun.export.task.run_export`).
"""
from .onnx import OnnxModel, export_onnx  # (onnx, onnxscript, onnxruntime are imported when used)
from .program import ExportableModel, ExportError, check_exportable, dynamic_shapes, example_inputs, export_program
from .results import pad_images, results_from_outputs, run_exported

__all__ = ["ExportError", "ExportableModel", "OnnxModel", "check_exportable", "dynamic_shapes", "example_inputs",
           "export_onnx", "export_program", "pad_images", "results_from_outputs", "run_exported"]
