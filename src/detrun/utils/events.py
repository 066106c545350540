"""Where training metrics go: ``metrics.jsonl`` in the run directory, TensorBoard if installed.

One JSON object per line, ``{"iteration": N, name: value, ...}``, where N counts the
optimizer steps done (so it matches the checkpoint ``model_{N:07d}.pth``). Names are the
loss terms (``loss_cls``...), ``total_loss``, ``lr``, ``time`` and ``data_time`` (seconds
per iteration), and evaluation results flattened as ``"bbox/AP"``.
"""
from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from detrun.errors import writing

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
    """Append metrics to ``run_dir/metrics.jsonl`` and TensorBoard event files in `run_dir`.

    Args:
        run_dir: the run directory.
        start_iter: a resumed run's first iteration: lines after it (written by the killed
            run after its last checkpoint) are dropped, so each iteration appears once. A run
            starting at 0 starts the file afresh.
        tensorboard: also write TensorBoard events (skipped with a note if not installed).
    """

    def __init__(self, run_dir: Path, *, start_iter: int = 0, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        kept = [record for record in _read_records(self.path) if record.get("iteration", 0) <= start_iter] \
            if start_iter > 0 else []
        with writing(self.path):
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))
            self._file = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("tensorboard is not installed: metrics go to %s only", self.path)
            else:
                # purge_step drops events a killed run wrote past the checkpoint we resume from.
                self._tb = SummaryWriter(str(run_dir), purge_step=start_iter + 1 if start_iter else None)

    def write(self, iteration: int, scalars: Mapping[str, float]) -> None:
        """Record `scalars` (name -> float) at `iteration`; flushed at once so a crash loses nothing.

        A NaN or infinite value (e.g. an AP with no ground truth to score) is written as ``null``:
        JSON has no NaN, and strict readers refuse Python's ``NaN``.
        """
        record = {"iteration": iteration, **{k: v if math.isfinite(v) else None for k, v in scalars.items()}}
        with writing(self.path):
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
            self._file.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(name, value, iteration)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _read_records(path: Path) -> list[dict]:
    """The records of a metrics file; a line torn by a killed writer is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("Skipping an unreadable line of %s (a run killed while writing it?)", path)
    return records


class WindowedMeans:
    """Mean of each named scalar over its last `window` values (what the progress bar shows)."""

    def __init__(self, window: int):
        self.window = window
        self._values: dict[str, deque] = {}

    def add(self, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._values.setdefault(name, deque(maxlen=self.window)).append(value)

    def means(self) -> dict[str, float]:
        return {name: math.fsum(v) / len(v) for name, v in self._values.items() if v}

    def state_dict(self) -> dict:
        """``{"values": {name: [oldest .. newest]}}``: plain lists, readable with weights_only=True."""
        return {"values": {name: list(v) for name, v in self._values.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._values = {name: deque(v, maxlen=self.window) for name, v in state["values"].items()}


def flatten_results(results: Mapping, prefix: str = "") -> dict[str, float]:
    """``{"bbox": {"AP": 40.1}}`` -> ``{"bbox/AP": 40.1}``, keeping numeric leaves only."""
    flat = {}
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_results(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
