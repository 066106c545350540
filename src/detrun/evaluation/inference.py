"""`inference_on_dataset`: run a model over a loader and score it with an evaluator."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from detrun.utils.comm import is_main_process
from detrun.utils.precision import autocast_dtype

logger = logging.getLogger(__name__)

# The one key for the precision of task=eval, task=predict, the evaluation after training and
# `Predictor`; recipes default it to trainer.amp (recipes/common/trainer.py).
INFERENCE_AMP_KEY = "trainer.inference_amp"
# Iterations excluded from the timing: the first ones pay for cudnn autotuning, Triton
# compilation, allocator growth and loader start-up.
_WARMUP_ITERS = 5


class Evaluator(Protocol):
    def reset(self) -> None: ...
    def process(self, inputs: list[dict], outputs: list[dict]) -> None: ...
    def evaluate(self) -> dict: ...


def inference_amp(cfg: DictConfig) -> str:
    """The recipe's inference precision: ``trainer.inference_amp`` (recipes saved before the key:
    ``trainer.amp``; neither: "off"). A value other than off/auto/bf16/fp16 is a UserError naming the key."""
    amp = OmegaConf.select(cfg, INFERENCE_AMP_KEY, default=None)
    if amp is None:
        amp = OmegaConf.select(cfg, "trainer.amp", default="off")
    autocast_dtype(amp, torch.device("cpu"), key=INFERENCE_AMP_KEY)  # checked before anything is built
    return amp


def inference_autocast(model: nn.Module, amp: str, key: str = "amp") -> contextlib.AbstractContextManager:
    """Autocast for running `model` (on the device of its parameters) in precision `amp`
    (off | auto | bf16 | fp16, see `detrun.utils.precision`); `key` names the setting in errors."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = autocast_dtype(amp, device, key=key)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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
        amp: "off", "auto" (bf16 where the device computes it natively), "bf16" or "fp16" autocast.

    Returns:
        The evaluator's results (``{}`` without one and on ranks other than 0). The time per
        image, excluding the first warm-up iterations, is logged.
    """
    autocast = inference_autocast(model, amp)
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
