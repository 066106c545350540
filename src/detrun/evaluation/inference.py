"""`inference_on_dataset`: run a model over a loader and score it with an evaluator."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from detrun.errors import UserError
from detrun.utils.comm import is_main_process

logger = logging.getLogger(__name__)

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Iterations excluded from the timing: the first ones pay for cudnn autotuning, Triton
# compilation, allocator growth and loader start-up.
_WARMUP_ITERS = 5


class Evaluator(Protocol):
    def reset(self) -> None: ...
    def process(self, inputs: list[dict], outputs: list[dict]) -> None: ...
    def evaluate(self) -> dict: ...


def _autocast(model: nn.Module, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    if amp not in _AMP_DTYPES:
        raise UserError(f"amp={amp!r} is not one of off, bf16, fp16")
    param = next(model.parameters(), None)
    device_type = param.device.type if param is not None else "cpu"
    return torch.autocast(device_type, dtype=_AMP_DTYPES[amp])


def inference_on_dataset(
    model: nn.Module, loader: Iterable[list[dict]], evaluator: Evaluator | None, *, amp: str = "off"
) -> dict:
    """Run `model` on every batch of `loader` and return ``evaluator.evaluate()``.

    The model runs in eval mode under ``torch.no_grad`` (its previous mode is restored after),
    optionally under autocast. In a distributed run each rank passes its own shard of the data
    (the test loader's sampler shards); the evaluator gathers to rank 0, which gets the metrics
    while the other ranks get ``{}``.

    Args:
        model: takes ``list[dict]`` and returns ``[{"instances": Instances}, ...]`` in eval mode.
        loader: yields lists of input dicts.
        evaluator: ``reset / process / evaluate``; None just runs the model (returns ``{}``).
        amp: "off", "bf16" or "fp16" autocast.

    Returns:
        The evaluator's results (``{}`` without one and on ranks other than 0). The time per
        image, excluding the first warm-up iterations, is logged.
    """
    autocast = _autocast(model, amp)
    total = len(loader) if hasattr(loader, "__len__") else None
    num_warmup = min(_WARMUP_ITERS, total - 1) if total else _WARMUP_ITERS
    if evaluator is not None:
        evaluator.reset()
    was_training = model.training
    model.eval()
    num_images = timed_images = 0
    start = timed_start = time.perf_counter()
    try:
        with torch.no_grad(), autocast:
            for iteration, inputs in enumerate(tqdm(loader, total=total, desc="inference",
                                                    disable=not is_main_process(), leave=False)):
                if iteration == num_warmup:
                    timed_start, timed_images = time.perf_counter(), 0
                outputs = model(inputs)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()  # so time is the model's, not the next launch's queue
                if evaluator is not None:
                    evaluator.process(inputs, outputs)
                num_images += len(inputs)
                timed_images += len(inputs)
    finally:
        model.train(was_training)
    end = time.perf_counter()
    if timed_images and num_images > timed_images:
        logger.info("Inference on %d images: %.4f s/image (excluding %d warm-up iterations), total %.1f s",
                    num_images, (end - timed_start) / timed_images, num_warmup, end - start)
    else:
        logger.info("Inference on %d images: %.4f s/image (too few batches to exclude warm-up), total %.1f s",
                    num_images, (end - start) / max(num_images, 1), end - start)
    if evaluator is None:
        return {}
    return evaluator.evaluate() or {}
