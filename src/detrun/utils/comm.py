"""Distributed helpers: who am I, wait for everyone, agree on values.

Every function works without a process group (a plain single-process run), so library code
can call them unconditionally. Functions marked *collective* must be called by every rank,
in the same order, or the job deadlocks.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group (our launcher, torchrun, SLURM)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all ranks (collective); a no-op in a single-process run."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, in rank order (collective); ``[obj]`` when not distributed."""
    if get_world_size() == 1:
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s picklable `obj` on every rank (collective); `obj` itself when not distributed."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo takes CPU ones.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def check_same_names(names: Iterable[str], what: str = "loss terms") -> None:
    """Raise if the ranks hold different sets of `names` (collective, one 2-element all_reduce).

    DDP and `reduce_mean` pair tensors by position, so a rank that drops a loss term (say, a
    batch with no ground truth) would silently desynchronise the job or hang it. Checking the
    names first turns that into an error listing every rank's names.
    """
    if get_world_size() == 1:
        return
    names = sorted(names)
    # crc32 fits a float64 exactly; MAX of (c, -c) gives the largest and minus the smallest.
    code = float(zlib.crc32(",".join(names).encode()))
    extremes = torch.tensor([code, -code], dtype=torch.float64, device=_device())
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    if extremes[0] != -extremes[1]:
        per_rank = all_gather_object(names)
        listing = "; ".join(f"rank {r}: {n}" for r, n in enumerate(per_rank))
        raise RuntimeError(
            f"ranks returned different {what} ({listing}). A model must return every term on every "
            "rank, zero-weighted when a rank has nothing to compute it from (e.g. no ground truth)."
        )


def reduce_mean(values: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Average scalar tensors over ranks (collective: one all_reduce; a sync point).

    Args:
        values: the same names on every rank (see `check_same_names`), scalar tensors.
    Returns:
        ``{name: mean over ranks}`` as Python floats, identical on every rank.
    """
    names = sorted(values)
    if not names:
        return {}
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names])
    if get_world_size() > 1:
        stacked = stacked.to(_device())
        dist.all_reduce(stacked)
        stacked /= get_world_size()
    return dict(zip(names, stacked.tolist()))
