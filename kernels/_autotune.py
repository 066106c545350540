"""Autotuning configs that also make sense under the Triton interpreter."""
from __future__ import annotations

import triton


def configs(options: list[dict], warps: list[int]) -> list[triton.Config]:
    """Every (meta-parameters, num_warps) pair for GPUs; under TRITON_INTERPRET=1 only the first option.

    The interpreter cannot time kernels and runs each program as NumPy, so there one config with
    the largest tiles (put it first) is both the only meaningful choice and the fastest.
    """
    if triton.knobs.runtime.interpret:
        return [triton.Config(options[0], num_warps=warps[0])]
    return [triton.Config(o, num_warps=w) for o in options for w in warps]
