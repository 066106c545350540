"""Checkpointing policy: what a training checkpoint holds, where it goes, how many stay, resume.

``run_dir/checkpoints/model_{N:07d}.pth`` (N = optimizer steps done) holds::

    {"format": "detrun", "iteration": N, "world_size": W,
     "model": ..., "optimizer": ..., "scaler": ..., "ema": ...,      # the same on every rank
     "log_window": ...,                                              # the steps of the next metrics row
     "ranks": [{"rng": ..., "loader_rng": ..., "loader": ...}, ...]} # one entry per rank

Per-rank entries matter for bit-exact resume: each rank has its own random generators (the
training's and the loader's) and its own position in its shard of the data.
"""
from __future__ import annotations

import contextlib
import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from detrun.checkpoint.io import load_training_checkpoint, remove_stale_temps, save_atomic
from detrun.checkpoint.reading import CheckpointError
from detrun.utils import comm

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^model_(\d+)\.pth$")


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> Any: ...


class RNGState:
    """The Python, NumPy and torch (CPU + CUDA) global generators, as one checkpointable object.

    Stored as tensors, ints and lists only, so ``torch.load(weights_only=True)`` reads it back.
    """

    def state_dict(self) -> dict:
        numpy = np.random.get_state(legacy=False)
        return {
            "python": random.getstate(),
            "numpy": {**numpy, "state": {"key": numpy["state"]["key"].tolist(), "pos": numpy["state"]["pos"]}},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        numpy = state["numpy"]
        key = np.asarray(numpy["state"]["key"], dtype=np.uint32)
        np.random.set_state({**numpy, "state": {"key": key, "pos": numpy["state"]["pos"]}})
        torch.set_rng_state(state["torch"])
        if state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])


class LoaderRNG:
    """Global random generators of the train loader's own, swapped in while it produces a batch.

    Why: creating a DataLoader iterator draws its base seed from torch's global generator, and
    loading in the training process may draw more. A resumed run creates its iterator at its
    resume step, the uninterrupted run at step 0, so draws shared with training would shift
    every later dropout mask and ROI sample. With two streams, the training's draws depend only
    on the steps done, and the loader's stream is checkpointed (per rank) with them. Starts as
    a copy of the generators' state at construction.

    A resumed loader's stream is one iterator creation ahead of the uninterrupted run's, which
    matters only for a loader drawing from the global generators in the training process; the
    built-in loader doesn't (its augmentations are seeded by sample position).
    """

    def __init__(self):
        self._state = RNGState().state_dict()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within the block the global generators are the loader's; afterwards training's again."""
        rng = RNGState()
        training = rng.state_dict()
        rng.load_state_dict(self._state)
        try:
            yield
        finally:
            self._state = rng.state_dict()
            rng.load_state_dict(training)

    def state_dict(self) -> dict:
        return self._state

    def load_state_dict(self, state: dict) -> None:
        self._state = state


def list_checkpoints(directory: Path) -> list[Path]:
    """The ``model_{N:07d}.pth`` files in `directory` (none if it doesn't exist), oldest first."""
    directory = Path(directory)
    found = [p for p in directory.iterdir() if _NAME.match(p.name)] if directory.is_dir() else []
    return sorted(found, key=checkpoint_iteration)


def checkpoint_iteration(path: Path) -> int:
    """N of ``model_{N:07d}.pth``: the optimizer steps done when it was written."""
    return int(_NAME.match(path.name).group(1))


def save_weights(path: Path, model: nn.Module, iteration: int) -> None:
    """Write the weights-only file ``{"format": "detrun", "model": state_dict, "iteration": N}``."""
    save_atomic({"format": "detrun", "model": model.state_dict(), "iteration": iteration}, path)


class Checkpointer:
    """Save and restore the full training state of a run.

    Args:
        run_dir: the run directory; checkpoints go to ``run_dir/checkpoints``.
        keep: how many of the newest checkpoints to keep; 0 keeps all.
        shared: name -> object with ``state_dict/load_state_dict``, identical on every rank
            (model, optimizer, scaler, EMA); rank 0's copy is saved.
        per_rank: name -> object whose state differs between ranks (RNG, loader position);
            every rank's copy is saved.
    """

    def __init__(self, run_dir: Path, *, keep: int, shared: dict[str, Stateful], per_rank: dict[str, Stateful]):
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.keep = keep
        self.shared = shared
        self.per_rank = per_rank
        if comm.is_main_process():
            self.directory.mkdir(parents=True, exist_ok=True)
            for path in remove_stale_temps(self.directory):
                logger.info("Removed %s, left by a run killed while writing a checkpoint", path)

    def checkpoints(self) -> list[Path]:
        """This run's checkpoint files, oldest first."""
        return list_checkpoints(self.directory)

    def save(self, iteration: int) -> Path:
        """Write the checkpoint for `iteration` (collective: every rank calls, rank 0 writes).

        Returns once the file is complete on disk, on every rank.
        """
        ranks = comm.all_gather_object({k: v.state_dict() for k, v in self.per_rank.items()})
        path = self.directory / f"model_{iteration:07d}.pth"
        if comm.is_main_process():
            state = {"format": "detrun", "iteration": iteration, "world_size": comm.get_world_size(),
                     **{k: v.state_dict() for k, v in self.shared.items()}, "ranks": ranks}
            save_atomic(state, path)
            if self.keep > 0:
                # Only this run's history counts: files of later iterations are left by a run we
                # did not continue (resumed from an earlier checkpoint); they sort newer, and
                # counting them would delete the checkpoints this run just wrote.
                own = [p for p in self.checkpoints() if checkpoint_iteration(p) <= iteration]
                for old in own[: -self.keep]:
                    old.unlink()
        # Nobody runs ahead (and perhaps crashes) before the checkpoint exists.
        comm.synchronize()
        return path

    def resume(self, source: bool | str | None) -> int:
        """Restore the training state and return the iteration to start from (0 if none).

        Args:
            source: False/None: start fresh. True: the newest readable checkpoint of this run,
                if any. A path: that checkpoint file, or the newest in that run directory.
        Raises:
            CheckpointError: an explicit path that doesn't exist, has no checkpoint, or can't be read.
        """
        if source is None or source is False:
            return 0
        if source is True:
            candidates = self.checkpoints()
            if not candidates:
                logger.info("trainer.resume: no checkpoint in %s yet, starting from iteration 0", self.directory)
                return 0
        else:
            candidates = self._explicit_candidates(Path(str(source)).expanduser())
        # Atomic writes make a torn file unlikely, but a full disk or a bad copy is not: fall back.
        for path in reversed(candidates[1:]):
            try:
                return self._restore(path, load_training_checkpoint(path))
            except CheckpointError as exc:
                logger.warning("Skipping unreadable checkpoint (%s); trying the previous one", exc)
        return self._restore(candidates[0], load_training_checkpoint(candidates[0]))

    def _explicit_candidates(self, source: Path) -> list[Path]:
        if source.is_file():
            return [source]
        for directory in (source / CHECKPOINT_DIR, source):
            if list_checkpoints(directory):
                return list_checkpoints(directory)
        raise CheckpointError(
            f"trainer.resume='{source}' is neither a checkpoint file nor a run directory with "
            f"{CHECKPOINT_DIR}/model_*.pth files; give a .pth file or the run directory to resume"
        )

    def _restore(self, path: Path, state: dict) -> int:
        for name, obj in self.shared.items():
            if name in state:
                obj.load_state_dict(state[name])
            else:
                logger.warning("The checkpoint has no '%s' state; it starts fresh", name)
        ranks = state.get("ranks", [])
        if len(ranks) == comm.get_world_size():
            mine = ranks[comm.get_rank()]
        else:
            logger.warning(
                "The checkpoint was written by %d processes, this run has %d: random generators start "
                "fresh and the data position is rank 0's, so the run continues but not bit-exactly.",
                len(ranks), comm.get_world_size())
            mine = {k: v for k, v in (ranks[0] if ranks else {}).items() if k != "rng"}
        for name, obj in self.per_rank.items():
            if name in mine:
                obj.load_state_dict(mine[name])
        logger.info("Resumed from %s at iteration %d", path, state["iteration"])
        return state["iteration"]
