"""The one place that decides which backend runs an op.

Backends:
  "triton"       detrun's Triton kernels (`detrun.kernels`): CUDA tensors, or CPU tensors when
                 the kernels were built under `TRITON_INTERPRET=1` (how the tests run them).
  "torchvision"  torchvision's C++/CUDA ops, for the ops torchvision has (roi_align, nms).
  "torch"        pure-PyTorch fallbacks in `detrun.ops`: every op, device and floating dtype.

Choice for `backend=None`: the env var `DETRUN_OPS_BACKEND` if set (and not "auto"), else
automatic: triton for CUDA tensors, torchvision for CPU tensors (torch for CPU roi_align whose
input needs a gradient), then the next backend in that order which covers the op and dtype,
ending at torch. A backend named explicitly (argument) that
cannot run the input raises `OpsBackendError`; a backend named by the env var must be usable on
the device (else `OpsBackendError`), but for an op or dtype it does not cover the automatic choice
applies, so one env var can steer a whole model.

Resolved once: `resolve` answers each (op, device type, dtype, needs_grad) the first time it is
asked, through `choose` (which reads the env var), and remembers the answer for the process;
the ops ask `resolve`, so no call reads the environment. `reset()` forgets every answer (after
changing the env var in-process, as the tests do). The registered ops (`detrun.ops.library`)
take the name as an argument, "" meaning "resolve for the tensors' device and dtype", which is
what `torch.export` records: an exported program picks its backend where it runs.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator

import torch

from ..errors import UserError

ENV_VAR = "DETRUN_OPS_BACKEND"
BACKENDS = ("triton", "torchvision", "torch")

# What each backend implements. torchvision computes fp16/bf16 in float32 (as its autocast
# wrappers do), so it covers every floating dtype; Triton kernels cover the training dtypes.
_HALF_AND_FLOAT = (torch.float16, torch.bfloat16, torch.float32)
_ALL_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_COVERAGE: dict[str, dict[str, tuple[torch.dtype, ...]]] = {
    "roi_align": {"triton": _HALF_AND_FLOAT, "torchvision": _ALL_FLOAT, "torch": _ALL_FLOAT},
    "nms": {"triton": _HALF_AND_FLOAT, "torchvision": _ALL_FLOAT, "torch": _ALL_FLOAT},
    "batched_nms": {"triton": _HALF_AND_FLOAT, "torchvision": _ALL_FLOAT, "torch": _ALL_FLOAT},
    "paste_masks": {"triton": _HALF_AND_FLOAT, "torch": _ALL_FLOAT},
}
OPS = tuple(_COVERAGE)
_AUTO_ORDER = {"cuda": ("triton", "torchvision", "torch"), "cpu": ("torchvision", "torch")}
# When the op's input needs a gradient. torchvision's CPU roi_align backward is a serial
# scatter; the torch fallback's (an embedding_bag backward) takes 0.2-0.5x its time and the
# pair forward + backward 0.5-0.6x (benchmarks/README.md, ops), so CPU training uses it.
_AUTO_ORDER_WITH_GRAD = {("roi_align", "cpu"): ("torch",)}


class OpsBackendError(UserError, RuntimeError):
    """A requested ops backend cannot run the given input here."""


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why `backend` cannot run on `device` in this process, or None if it can."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device is available"
    if backend == "torch":
        return None
    if backend == "torchvision":
        return _torchvision_unavailable()
    return _triton_unavailable(device.type)


@contextlib.contextmanager
def _tracer_paused() -> Iterator[None]:
    """Pause `torch.jit.trace` (if it is running) for torchvision's first import, which calls one
    of torchvision's ops returning an int: the tracer refuses that mid-trace."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


@functools.cache
def _torchvision_unavailable() -> str | None:
    try:
        with _tracer_paused():
            import torchvision  # noqa: F401
            from torchvision.extension import _has_ops
    except ImportError as e:
        return f"torchvision is not importable ({e})"
    if not _has_ops():
        return "torchvision was installed without its C++ ops"
    return None


@functools.cache
def _triton_unavailable(device_type: str) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed; install `triton` or use backend='torch'"
    from .. import kernels
    if device_type == "cpu" and not kernels.INTERPRETED:
        return ("Triton runs CPU tensors only in interpreter mode: set TRITON_INTERPRET=1 before "
                "detrun.kernels is first imported, or use backend='torch'/'torchvision' on CPU")
    if device_type not in ("cpu", "cuda"):
        return f"Triton kernels are not built for {device_type!r} tensors"
    return None


def covers(op: str, backend: str, dtype: torch.dtype) -> bool:
    """Whether `backend` implements `op` for tensors of `dtype` (on any device)."""
    return dtype in _COVERAGE[op].get(backend, ())


def _check_name(name: str, source: str) -> str:
    name = name.strip().lower()
    if name not in BACKENDS:
        raise OpsBackendError(f"{source}={name!r} is not an ops backend; use one of {BACKENDS}"
                              + (" or 'auto'" if source == ENV_VAR else ""))
    return name


def automatic(op: str, device: torch.device, dtype: torch.dtype, needs_grad: bool = False) -> str:
    """The backend `op` uses on `device`/`dtype` when neither argument nor env var chooses;
    `needs_grad`: the input requires a gradient (training)."""
    order = _AUTO_ORDER.get(device.type, ("torch",))
    if needs_grad:
        order = _AUTO_ORDER_WITH_GRAD.get((op, device.type), order)
    for name in order:
        if covers(op, name, dtype) and unavailable_reason(name, device) is None:
            return name
    return "torch"


def select(op: str, tensor: torch.Tensor, backend: str | None = None) -> str:
    """Backend name that runs `op` for `tensor` (its device, dtype and whether autograd will
    need its gradient decide): an explicit `backend` checked by `choose`, else `resolve`."""
    if backend is not None:
        return _checked(op, tensor.device.type, tensor.dtype, backend)
    return resolve(op, tensor.device, tensor.dtype, needs_grad(tensor))


_RESOLVED: dict[tuple[str, str, torch.dtype, bool], str] = {}


def resolve(op: str, device: torch.device, dtype: torch.dtype, needs_grad: bool = False) -> str:
    """The backend `op` runs on for `device`/`dtype` without an explicit request: `choose`'s
    answer, computed on the first call for this key and remembered for the process (`reset`)."""
    return _resolve(op, torch.device(device).type, dtype, bool(needs_grad))


@torch.compiler.assume_constant_result  # under torch.compile: called once while tracing, a constant
def _resolve(op: str, device_type: str, dtype: torch.dtype, needs_grad: bool) -> str:
    key = (op, device_type, dtype, needs_grad)
    name = _RESOLVED.get(key)
    if name is None:
        name = _RESOLVED[key] = choose(op, torch.device(device_type), dtype, None, needs_grad)
    return name


@torch.compiler.assume_constant_result
def _checked(op: str, device_type: str, dtype: torch.dtype, backend: str) -> str:
    return choose(op, torch.device(device_type), dtype, backend)


def reset() -> None:
    """Forget every resolved backend: the next `resolve` reads DETRUN_OPS_BACKEND again."""
    _RESOLVED.clear()


def needs_grad(tensor: torch.Tensor) -> bool:
    """Whether autograd will want a gradient of `tensor` from the op about to run."""
    return tensor.requires_grad and torch.is_grad_enabled()


def choose(op: str, device: torch.device, dtype: torch.dtype, backend: str | None = None,
           needs_grad: bool = False) -> str:
    """Backend name that runs `op` on tensors of `device` and `dtype`.

    `backend`: an explicit request ("triton" | "torchvision" | "torch") or None (env var, then
    automatic). `needs_grad`: the input requires a gradient. Raises OpsBackendError if an
    explicitly requested backend cannot run the input.
    """
    device = torch.device(device)
    if backend is not None:
        name = _check_name(backend, "backend")
        if not covers(op, name, dtype):
            have = [b for b in BACKENDS if covers(op, b, dtype)]
            raise OpsBackendError(f"backend={name!r} has no {op} for {dtype} tensors; "
                                  f"backends that do: {have}")
        reason = unavailable_reason(name, device)
        if reason is not None:
            raise OpsBackendError(f"backend={name!r} cannot run {op} on {device.type}: {reason}")
        return name
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env and env != "auto":
        name = _check_name(env, ENV_VAR)
        reason = unavailable_reason(name, device)
        if reason is not None:
            raise OpsBackendError(f"{ENV_VAR}={name!r} cannot run on {device.type}: {reason}; "
                                  f"unset {ENV_VAR} to choose automatically")
        if covers(op, name, dtype):
            return name
    return automatic(op, device, dtype, needs_grad)
