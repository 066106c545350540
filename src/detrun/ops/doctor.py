"""`python -m detrun.ops` / `python -m detrun task=doctor`: what the ops can run on here.

Prints the torch, torchvision, Triton and CUDA versions found and, for CPU and CUDA tensors of
each dtype, the backend every op will use (through the same `dispatch.choose` the ops call).
"""
from __future__ import annotations

import importlib.metadata
import os
import pathlib

import torch

from . import dispatch

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cell(op: str, device: str) -> str:
    """Backend for float32, with the dtypes that differ in parentheses, or the reason it can't run."""
    try:
        chosen = {dt: dispatch.choose(op, torch.device(device), dt) for dt in _DTYPES}
    except dispatch.OpsBackendError as e:
        return f"error: {e}"
    main = chosen[torch.float32]
    others = [f"{str(dt).removeprefix('torch.')}: {b}" for dt, b in chosen.items() if b != main]
    return main + (f" ({', '.join(others)})" if others else "")


def report() -> str:
    """The doctor's text: versions, backend availability and the backend of every op per device."""
    cuda = torch.cuda.is_available()
    cuda_desc = (f"{torch.cuda.device_count()} device(s), {torch.cuda.get_device_name(0)}" if cuda
                 else "no device available")
    lines = [
        "detrun ops doctor",
        f"  torch        {torch.__version__} (built with CUDA {torch.version.cuda or 'none'})",
        f"  torchvision  {_version('torchvision')}",
        f"  triton       {_version('triton')}",
        f"  CUDA         {cuda_desc}",
        f"  {dispatch.ENV_VAR}={os.environ.get(dispatch.ENV_VAR, '') or '(unset: automatic)'}",
        f"  TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '') or '(unset)'}",
        "",
        "backend availability:",
    ]
    for device in ("cpu", "cuda"):
        for name in dispatch.BACKENDS:
            reason = dispatch.unavailable_reason(name, torch.device(device))
            lines.append(f"  {device:<5}{name:<12}{'yes' if reason is None else 'no: ' + reason}")
    lines += ["", f"{'op':<13}{'cpu tensors':<40}cuda tensors"]
    for op in dispatch.OPS:
        cuda_cell = _cell(op, "cuda") if cuda else "n/a (no CUDA device)"
        lines.append(f"{op:<13}{_cell(op, 'cpu'):<40}{cuda_cell}")
    lines.append("(box_iou, box_area and the other box helpers are plain PyTorch on every device)")
    return "\n".join(lines)


def run_doctor(cfg: object, run_dir: pathlib.Path) -> None:
    """Task `doctor`: print `report()` and save it as run_dir/doctor.txt (cfg is not needed)."""
    text = report()
    print(text)
    (pathlib.Path(run_dir) / "doctor.txt").write_text(text + "\n")
