"""Autotuning configs that also make sense under the Triton interpreter."""
from __future__ import annotations

import itertools

import triton


def configs(options: list[dict], warps: list[int], interpreted: dict) -> list[triton.Config]:
    """Every (meta-parameters, num_warps) pair for GPUs; under TRITON_INTERPRET=1 only `interpreted`.

    The interpreter cannot time kernels and runs each program as NumPy, where one config with
    large tiles (few programs) is both the only meaningful choice and the fastest.
    """
    if triton.knobs.runtime.interpret:
        return [triton.Config(interpreted, num_warps=4)]
    return [triton.Config(o, num_warps=w) for o, w in itertools.product(options, warps)]
