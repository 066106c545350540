"""ONNX export of a detector (`torch.onnx.export` of its exported program) and onnxruntime inference.

detrun's registered ops become standard ONNX ops (`TRANSLATIONS`), so the file runs in any
ONNX runtime without custom operators:

- ``detrun::roi_align`` -> ``RoiAlign`` (opset 16+): ``coordinate_transformation_mode`` is
  ``half_pixel`` for ``aligned=True`` (Detectron2's ROIAlignV2) and ``output_half_pixel`` for the
  original op; ``sampling_ratio`` <= 0 (adaptive) becomes 0, ONNX's adaptive; the (K, 5) rois
  are split into ``rois`` (K, 4) and int64 ``batch_indices``.
- ``detrun::nms`` -> ``NonMaxSuppression`` on one batch and one class (selection order is by
  decreasing score, as the op returns it).
- ``detrun::batched_nms`` -> ``NonMaxSuppression`` with one ONNX class per distinct id: the scores
  are laid out as a (1, C, N) matrix (C = max id + 1, -inf outside a box's own class, dropped by
  the score threshold -inf), so boxes only suppress boxes of their class, without torchvision's
  coordinate offsets; the selected boxes are then ordered by decreasing score, ties by lower
  index (two ``TopK``), as detrun's op orders them.
- ``detrun::paste_masks`` is not in exported graphs: masks leave the model as box-relative
  probabilities and are pasted by `detrun.modeling.postprocess` (like eager).

`onnx`, `onnxscript` and `onnxruntime` are the optional extra ``detrun[export]``.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detrun.errors import UserError

from .program import ExportError, class_count, dynamic_shapes, example_inputs, export_program, padding_of

EXTRA = "pip install 'detrun[export]'"
# Largest int64 count ONNX's NonMaxSuppression takes as "no limit" (0 would mean none).
_NO_LIMIT = 2**62
_META_PREFIX = "detrun."


def require(*modules: str) -> None:
    """Raise ExportError naming the ``detrun[export]`` extra when a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export and onnxruntime inference need {', '.join(missing)}: {EXTRA}")


def translations() -> dict[Any, Any]:
    """`torch.onnx.export`'s ``custom_translation_table`` for detrun's registered ops (ONNX Script)."""
    require("onnxscript")
    from onnxscript import opset18 as op

    def roi_align(input, rois, spatial_scale: float, output_height: int, output_width: int,
                  sampling_ratio: int, aligned: bool, backend: str = ""):
        batch_indices = op.Cast(op.Gather(rois, op.Constant(value_int=0), axis=1), to=7)  # int64
        boxes = op.Slice(rois, op.Constant(value_ints=[1]), op.Constant(value_ints=[5]),
                         op.Constant(value_ints=[1]))
        return op.RoiAlign(input, boxes, batch_indices,
                           coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
                           mode="avg", output_height=output_height, output_width=output_width,
                           sampling_ratio=max(int(sampling_ratio), 0), spatial_scale=float(spatial_scale))

    def nms(boxes, scores, iou_threshold: float, backend: str = ""):
        selected = op.NonMaxSuppression(
            op.Unsqueeze(boxes, op.Constant(value_ints=[0])),
            op.Unsqueeze(scores, op.Constant(value_ints=[0, 1])),
            op.Constant(value_ints=[_NO_LIMIT]), op.Constant(value_floats=[float(iou_threshold)]))
        return op.Gather(selected, op.Constant(value_int=2), axis=1)

    def batched_nms(boxes, scores, idxs, iou_threshold: float, backend: str = ""):
        ids = op.Cast(idxs, to=7)
        num_classes = op.Max(op.Add(op.ReduceMax(ids, keepdims=1), op.Constant(value_ints=[1])),
                             op.Constant(value_ints=[1]))
        classes = op.Range(op.Constant(value_int=0), op.Squeeze(num_classes), op.Constant(value_int=1))
        own = op.Equal(op.Unsqueeze(classes, op.Constant(value_ints=[1])), op.Unsqueeze(ids, op.Constant(value_ints=[0])))
        matrix = op.Where(own, op.Unsqueeze(scores, op.Constant(value_ints=[0])),
                          op.CastLike(op.Constant(value_float=float("-inf")), scores))
        selected = op.NonMaxSuppression(
            op.Unsqueeze(boxes, op.Constant(value_ints=[0])), op.Unsqueeze(matrix, op.Constant(value_ints=[0])),
            op.Constant(value_ints=[_NO_LIMIT]), op.Constant(value_floats=[float(iou_threshold)]),
            op.Constant(value_floats=[float("-inf")]))
        keep = op.Gather(selected, op.Constant(value_int=2), axis=1)
        count = op.Shape(keep)
        # Box index order first, then a sort by decreasing score that keeps it for ties.
        neg_keep = op.Neg(keep)
        keep, _ = op.TopK(neg_keep, count, largest=1, sorted=1)
        keep = op.Neg(keep)
        kept_scores = op.Gather(scores, keep, axis=0)
        _, order = op.TopK(kept_scores, count, largest=1, sorted=1)
        return op.Gather(keep, order, axis=0)

    return {torch.ops.detrun.roi_align.default: roi_align, torch.ops.detrun.nms.default: nms,
            torch.ops.detrun.batched_nms.default: batched_nms}


def export_onnx(model: torch.nn.Module, path: str | Path, *, height: int = 256, width: int = 320, batch: int = 1,
                dynamic: bool = True, program: torch.export.ExportedProgram | None = None) -> list[str]:
    """Write `model` (a `MetaArchitecture`) as an ONNX file at `path`; returns its output names.

    Inputs ``images`` float32 (N, C, H, W) and ``image_sizes`` int64 (N, 2), as `ExportableModel`
    takes them, H and W dynamic (multiples of the size divisibility) unless `dynamic` is False;
    outputs as `inference_tensors` names them (``boxes``, ``scores``, ``classes``, ``counts``,
    ``mask_probs``...). `program`: an `export_program` of the model to convert (else made here)."""
    require("onnx", "onnxscript")
    if program is None:
        program = export_program(model, height=height, width=width, batch=batch, dynamic=dynamic)
    args = example_inputs(model, height, width, batch)
    with torch.no_grad():
        names = list(program.module()(*args).keys())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    for name in ("onnx_ir", "onnxscript"):  # their INFO lines (one per folded constant) would flood the run log
        logging.getLogger(name).setLevel(logging.WARNING)
    onnx_program = torch.onnx.export(program, args, input_names=["images", "image_sizes"], output_names=names,
                                     dynamo=True, custom_translation_table=translations(), optimize=True,
                                     external_data=False, verbose=False)
    onnx_program.save(str(path))
    _finish_file(path, file_metadata(model))
    return names


def file_metadata(model: torch.nn.Module) -> dict[str, str]:
    """What a runner of the file must know about its inputs and outputs, stored in the ONNX file's
    ``metadata_props`` (keys prefixed ``detrun.``): the model class, its input channel order,
    the padding of its inputs and its class count."""
    divisibility, square = padding_of(model)
    return {"model": type(model).__name__, "input_format": model.input_format,
            "size_divisibility": str(divisibility), "square_size": str(square),
            "num_classes": str(class_count(model))}


def _finish_file(path: str | Path, metadata: dict[str, str]) -> None:
    """Add `metadata` to the file and readable names for its symbolic dimensions: ``height`` /
    ``width`` of the images and ``detections`` for the first dimension of per-detection outputs
    (torch.export calls them ``32*s75``, ``Min(50, u8)``...)."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {f"{_META_PREFIX}{k}": v for k, v in metadata.items()})
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for index, name in ((2, "height"), (3, "width")):
        if len(dims) > index and dims[index].dim_param:
            dims[index].dim_param = name
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].dim_param and output.name != "counts":
            dims[0].dim_param = "detections"
    onnx.save(model, str(path))


class OnnxModel:
    """An exported ONNX file under onnxruntime, called like `ExportableModel`:
    ``OnnxModel(path)(images, image_sizes) -> dict[str, Tensor]`` (CPU tensors)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None):
        require("onnxruntime")
        import onnxruntime

        if not Path(path).is_file():
            raise UserError(f"{path}: no such ONNX file (write one with task=export format=onnx)")
        options = onnxruntime.SessionOptions()
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=providers or ["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.path = str(path)
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len(_META_PREFIX):]: v for k, v in props.items() if k.startswith(_META_PREFIX)}

    def check_matches(self, model: torch.nn.Module) -> None:
        """Raise UserError unless `model` (built from the recipe the file is run with: its mapper
        reads the images, its layers above the core make the results) agrees with the file's
        metadata (`file_metadata`): a file exported from another recipe would be fed wrong inputs."""
        if not self.metadata:
            raise UserError(f"{self.path} has no detrun metadata: export it with task=export format=onnx")
        expected = file_metadata(model)
        wrong = [f"{k} {v!r} (the recipe's model has {expected.get(k)!r})" for k, v in self.metadata.items()
                 if k in expected and v != expected[k]]
        if wrong:
            raise UserError(f"{self.path} was exported from another model than the recipe's: {'; '.join(wrong)}. "
                            "Run it with the recipe (and overrides) it was exported with")

    def __call__(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        feed = {"images": images.detach().cpu().float().numpy(),
                "image_sizes": image_sizes.detach().cpu().to(torch.int64).numpy()}
        outputs = self.session.run(self.output_names, feed)
        return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in zip(self.output_names, outputs)}


__all__ = ["OnnxModel", "export_onnx", "dynamic_shapes", "translations"]
