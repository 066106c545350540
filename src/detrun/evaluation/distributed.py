"""Collecting per-rank evaluation state on the main process.

Evaluation state is small Python objects (COCO result dicts), so it travels with
``all_gather_object``, which pickles; no tensors or devices involved.
"""
from __future__ import annotations

from typing import Any

import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialized process group (torchrun, our launcher, a test's gloo group)."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj` as a list on rank 0 (rank order), None elsewhere; ``[obj]`` when not distributed.

    This is a collective: every rank must call it.
    """
    if not is_distributed():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered if dist.get_rank() == 0 else None
