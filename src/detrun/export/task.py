"""``python -m detrun task=export format=onnx|torch_export recipe=... model.weights=... output=FILE``."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from detrun.errors import UserError

from .compile import build_model
from .program import export_program, padding_of

logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torch_export": ".pt2"}
# Traced example size in blocks of the size divisibility (any size works: it only steers tracing).
_EXAMPLE_BLOCKS = (8, 10)


def run_export(cfg: DictConfig, run_dir: Path) -> torch.export.ExportedProgram:
    """Export ``cfg.model`` (with ``model.weights``) to ``cfg.output`` (default ``run_dir/model.onnx``
    or ``model.pt2``) in ``cfg.format`` (default onnx), on the CPU, with a dynamic image size;
    writes ``<output>.json`` beside it (inputs, outputs, the model's input format and padding).

    ONNX needs the ``detrun[export]`` extra; ``format=torch_export`` writes a `torch.export`
    program (``torch.export.load(path).module()(images, image_sizes)``). Returns the
    `torch.export` program the file was made from.
    """
    fmt = str(OmegaConf.select(cfg, "format") or "onnx")
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r} is not an export format; use one of: {', '.join(FORMATS)}")
    if fmt == "onnx":
        from .onnx import require

        require("onnx", "onnxscript")  # before the model is built
    output = Path(OmegaConf.select(cfg, "output") or Path(run_dir) / f"model{FORMATS[fmt]}").expanduser()
    if output.is_dir():
        output = output / f"model{FORMATS[fmt]}"
    if not OmegaConf.select(cfg, "model.weights"):
        logger.warning("model.weights is not set: exporting a randomly initialised model")
    from detrun.evaluation.trained_weights import check_trained_predictors

    model = build_model(cfg, key=None).to("cpu").eval()  # (compiling has no effect on a file)
    check_trained_predictors(model, cfg, "export")
    divisibility, square = padding_of(model)
    height, width = (square, square) if square else (divisibility * _EXAMPLE_BLOCKS[0], divisibility * _EXAMPLE_BLOCKS[1])
    program = export_program(model, height=height, width=width)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch_export":
        torch.export.save(program, str(output))
        names = list(program.call_spec.out_spec.context) if program.call_spec.out_spec else []
    else:
        from .onnx import export_onnx

        names = export_onnx(model, output, height=height, width=width, program=program)
    meta = {
        "format": fmt,
        "model": type(model).__name__,
        "inputs": {"images": "float32 [N, C, H, W], 0-255, channel order input_format, padded bottom/right to "
                             "multiples of size_divisibility", "image_sizes": "int64 [N, 2], (height, width) before padding"},
        "outputs": names,
        "input_format": model.input_format,
        "size_divisibility": divisibility,
        "square_size": square,
        "batch_size": 1,
        "weights": OmegaConf.select(cfg, "model.weights"),
    }
    Path(f"{output}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{type(model).__name__} exported ({fmt}, outputs {', '.join(names)}) to {output}")
    return program
