"""Open a weight file of any supported kind without running code from it."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from detrun.errors import UserError

from .safe_pickle import UnsafePickleError, safe_load_pickle

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_PROTO = 0x80  # first byte of a pickle of protocol >= 2 (also torch's legacy format)


class CheckpointError(UserError, ValueError):
    """A weight file can't be read or doesn't fit the model; the message names the file."""


def read_checkpoint(path: str | Path) -> Any:
    """Load the object stored in `path`: a torch file or a `.pkl` of numpy arrays.

    Torch files (zip or legacy format, any suffix) go through ``torch.load(weights_only=True)``
    and `.pkl` files through a restricted unpickler: neither can run code from the file.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file, an unsupported file type,
            or a pickle that holds more than tensors/arrays, containers and scalars.
    """
    if "://" in str(path):
        raise CheckpointError(f"model.weights = '{path}' is a URL; detrun does not download weights: download the "
                              "file yourself and give its local path")
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"model.weights = '{path}' is a directory; give the weights file inside it "
                              "(e.g. a run's model_final.pth)")
    if not path.is_file():
        raise CheckpointError(f"weights file '{path}' does not exist (check the path given to model.weights)")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"weights file '{path}' is empty")
    if head == _ZIP_MAGIC:
        return _torch_load(path)
    if head[0] != _PICKLE_PROTO:
        raise CheckpointError(
            f"weights file '{path}' is not a checkpoint: it is neither a PyTorch file (.pth/.pt) nor a "
            f"pickle (.pkl); it starts with bytes {head!r}"
        )
    if path.suffix == ".pkl":
        return _pickle_load(path)
    # Legacy (pre-zip) torch.save files are pickles with persistent tensor storages.
    return _torch_load(path)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"weights file '{path}' holds objects other than tensors and containers, so it is not loaded "
            f"(detrun never unpickles arbitrary objects): {str(exc).splitlines()[0]}. "
            "Re-save just the state dict: torch.save({'model': model.state_dict()}, path)."
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"weights file '{path}' is truncated or corrupt ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "download or copy it again"
        ) from exc


def _pickle_load(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return safe_load_pickle(f)
    except UnsafePickleError as exc:
        raise CheckpointError(f"weights file '{path}' is not loaded: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"weights file '{path}' is truncated or corrupt ({type(exc).__name__}: {exc}); download or copy it again"
        ) from exc
