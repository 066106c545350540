"""Hooks: work the train loop does around its steps (timing, checkpoints, evaluation, logging).

A hook overrides any of ``before_train / after_step / after_train``; each gets the
`TrainState`. Hooks run on every rank (a hook doing collective work, like checkpointing,
needs all of them); work for rank 0 only checks ``comm.is_main_process()``. A recipe adds
its own with ``trainer.hooks = [L(MyHook)(period=100)]``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from detrun.utils import comm
from detrun.utils.events import MetricsWriter, WindowedMeans, flatten_results

from .checkpointer import Checkpointer


@dataclass
class TrainState:
    """What hooks see.

    Attributes:
        iteration: optimizer steps done (1 after the first step); `start_iter` when resumed.
        metrics: this iteration's scalars, identical on every rank: loss terms averaged over
            ranks and micro-batches, ``total_loss``, ``lr``, ``data_time`` and ``time`` in s,
            ``grad_norm`` when clipping.
        writer: the metrics writer on rank 0, None elsewhere; hooks write their own scalars
            with ``state.writer.write(state.iteration, {...})``.
    """

    cfg: DictConfig
    run_dir: Path
    model: nn.Module  # unwrapped (not the DDP wrapper)
    optimizer: torch.optim.Optimizer
    start_iter: int
    max_iter: int
    iteration: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    writer: MetricsWriter | None = None


class Hook:
    """``before_train`` once, ``after_step`` after every optimizer step, ``after_train`` once at
    the end, also when training stops with an error (``state.iteration`` says how far it got)."""

    def before_train(self, state: TrainState) -> None:
        pass

    def after_step(self, state: TrainState) -> None:
        pass

    def after_train(self, state: TrainState) -> None:
        pass


def is_period(state: TrainState, period: int) -> bool:
    return period > 0 and state.iteration % period == 0


class IterationTimer(Hook):
    """Puts the wall time since the previous step into ``metrics["time"]`` (s/iter)."""

    def before_train(self, state: TrainState) -> None:
        self._last = time.perf_counter()

    def after_step(self, state: TrainState) -> None:
        now = time.perf_counter()
        state.metrics["time"] = now - self._last
        self._last = now


class PeriodicCheckpoint(Hook):
    """Saves the full training state every `period` steps and after the last one (0: never)."""

    def __init__(self, checkpointer: Checkpointer, period: int):
        self.checkpointer = checkpointer
        self.period = period

    def after_step(self, state: TrainState) -> None:
        if self.period > 0 and (is_period(state, self.period) or state.iteration == state.max_iter):
            self.checkpointer.save(state.iteration)


class PeriodicEval(Hook):
    """Runs `evaluate()` every `period` steps (0: never) and writes its results as metrics.

    The last step is left to the final evaluation of `run_train`, which also writes results.json.
    `evaluate` runs on every rank (each on its shard of the test set) and returns the results
    on rank 0.
    """

    def __init__(self, evaluate: Callable[[], dict], period: int):
        self.evaluate = evaluate
        self.period = period

    def after_step(self, state: TrainState) -> None:
        if is_period(state, self.period) and state.iteration < state.max_iter:
            results = self.evaluate()
            if state.writer is not None:
                state.writer.write(state.iteration, flatten_results(results))


class ProgressLogger(Hook):
    """Rank 0: a progress bar with losses, lr, data time, it/s and ETA; metrics.jsonl every `period`.

    Values shown and written are means over the last `period` steps. The window of those
    steps is part of the training checkpoint (`state_dict`), so the first line a resumed run
    writes averages the same steps as the uninterrupted run's (not only those since the resume).
    Every rank keeps it (the metrics are the same on every rank), like the other shared state.
    """

    def __init__(self, period: int):
        self.period = max(1, period)
        self.window = WindowedMeans(self.period)

    def state_dict(self) -> dict:
        return self.window.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.window.load_state_dict(state)

    def before_train(self, state: TrainState) -> None:
        if not comm.is_main_process():
            return
        # Off a terminal (a log file, SLURM output) redraw rarely so the log stays readable.
        interactive = sys.stderr.isatty()
        self.bar = tqdm(total=state.max_iter, initial=state.start_iter, desc="train", dynamic_ncols=True,
                        mininterval=0.5 if interactive else 60.0, smoothing=0.05)

    def after_step(self, state: TrainState) -> None:
        self.window.add(state.metrics)
        if not comm.is_main_process():
            return
        means = self.window.means()
        shown = {k: v for k, v in means.items() if k.startswith("loss") or k == "total_loss"}
        self.bar.set_postfix({**{k: f"{v:.4g}" for k, v in shown.items()}, "lr": f"{state.metrics['lr']:.3g}",
                              "data": f"{means['data_time']:.3f}s"}, refresh=False)
        self.bar.update(1)
        if is_period(state, self.period) or state.iteration == state.max_iter:
            state.writer.write(state.iteration, {**means, "lr": state.metrics["lr"]})

    def after_train(self, state: TrainState) -> None:
        if comm.is_main_process():
            self.bar.close()
