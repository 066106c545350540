"""Write checkpoints atomically; read training checkpoints back without running code from them.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then
renamed over the final name. A rename within one file system is atomic, so a run killed at
any moment (even SIGKILL mid-write) leaves either the old file or the new one, never half a
file; the leftover temporary file is ignored and removed by the next `remove_stale_temps`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import torch

from detrun.errors import writing

from .reading import CheckpointError, read_checkpoint

TEMP_MARK = ".tmp-"
# Keys every training checkpoint written by `detrun.engine` holds (see Checkpointer).
TRAINING_KEYS = ("format", "model", "optimizer", "iteration")


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` such that `path` is never seen half-written.

    Args:
        obj: tensors, containers and scalars (what ``torch.load(weights_only=True)`` reads).
        path: destination; its directory must exist.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    with writing(path):  # a full or read-only disk: one line naming `path`, not torch's traceback
        try:
            with open(temp, "wb") as f:
                _save(obj, f)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        # Persist the rename itself (the directory entry), so a power cut can't undo it.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _Writes:
    """The `write` and `flush` of file `f`, remembering the OSError a write raised."""

    def __init__(self, f: BinaryIO):
        self._f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._f.flush()


def _save(obj: Any, f: BinaryIO) -> None:
    """``torch.save(obj, f)``, raising a failed write's own OSError: torch turns it into a
    RuntimeError without the errno (ENOSPC), and the errno says what the user must fix."""
    writes = _Writes(f)
    try:
        torch.save(obj, writes)
    except RuntimeError:
        if writes.error is None:
            raise
        raise writes.error from None


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete temporary files that killed writers left in `directory`; return what was removed."""
    stale = [p for p in Path(directory).glob(f".*{TEMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_training_checkpoint(path: str | Path) -> dict:
    """Read a full training checkpoint written by `detrun.engine` onto the CPU.

    Returns:
        ``{"format": "detrun", "model": state_dict, "optimizer": ..., "iteration": int, ...}``.
    Raises:
        CheckpointError: the file is missing, truncated, corrupt, unsafe to unpickle, or holds
            weights only (e.g. ``model_final.pth``), naming the file.
    """
    state = read_checkpoint(path)
    missing = [k for k in TRAINING_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"'{path}' is not a detrun training checkpoint (it lacks {', '.join(missing)}): resume needs a "
            "checkpoints/model_*.pth file of a run; to start from weights only, set model.weights instead"
        )
    return state
