"""Shared helpers of the ops tests."""
import os

import pytest
import torch

from detrun.ops import dispatch

# Triton kernels run as NumPy programs under the interpreter: tests give them tiny inputs.
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def cases_for(op: str) -> list:
    """pytest params ("backend, device"): every backend implementing `op` on CPU and, when present,
    CUDA tensors; skipped with the reason where it cannot run here."""
    params = []
    for device in ("cpu", "cuda"):
        for name in dispatch.BACKENDS:
            if not dispatch.covers(op, name, torch.float32):
                continue
            reason = dispatch.unavailable_reason(name, torch.device(device))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            params.append(pytest.param(name, device, marks=marks, id=f"{name}-{device}"))
    return params


def tiny(backend: str) -> bool:
    """Whether this backend gets the reduced test sizes (interpreted Triton)."""
    return backend == "triton" and TRITON_INTERPRETED
