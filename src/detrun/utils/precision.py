"""Mixed precision: which autocast dtype an ``amp`` setting means on a device."""
from __future__ import annotations

import torch

from detrun.errors import UserError

# "auto": bf16 where the device computes it natively, full precision elsewhere.
AMP_CHOICES = ("off", "auto", "bf16", "fp16")
_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 math natively: a CUDA GPU with bf16 units, or a CPU with
    AVX-512 BF16 / AMX (oneDNN's bf16 kernels). Elsewhere bf16 is emulated and slower than
    float32 (~9x per shapes training step on an AVX2 CPU, benchmarks/README.md, train)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast_dtype(amp: str, device: torch.device, key: str = "trainer.amp") -> torch.dtype | None:
    """The autocast dtype that `amp` (one of `AMP_CHOICES`, read from config `key`) means on
    `device`; None runs in full precision. Unknown values are a UserError naming `key`."""
    if amp not in AMP_CHOICES:
        raise UserError(f"{key}={amp!r} is not one of: {', '.join(AMP_CHOICES)}")
    if amp == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return _DTYPES[amp]
