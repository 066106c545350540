"""Carry the data sets registered in this process into processes that start fresh.

A recipe file registers its data sets when it runs, in the process that loads it. Processes
forked from it inherit them; processes started fresh (spawned DDP ranks, data-loader workers
under the spawn or forkserver start method) import detrun anew and know only the built-in
names. `snapshot()` captures both catalogs; `restore()` recreates them in another process:

- registered functions and metadata values that pickle by reference (the built-in loaders,
  functions of importable modules, plain values) travel as they are;
- a function that a fresh process can't import (one defined in a recipe file, or a lambda)
  is recreated by running the file that defines it again there, as torchrun runs the whole
  command in every process.

`carry_registrations(fn)` wraps a process entry point with both steps.
"""
from __future__ import annotations

import functools
import importlib
import io
import logging
import pickle
import sys
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detrun.errors import UserError

from .catalog import DatasetCatalog, MetadataCatalog

logger = logging.getLogger(__name__)

# Identifies this process's catalogs: a forked child shares it (and has the catalogs already),
# a fresh interpreter draws a new one.
_TOKEN = [uuid.uuid4().hex]


class RegistrationError(UserError, RuntimeError):
    """A registered data set can't be recreated in another process; the message says how to register it."""


@dataclass
class Snapshot:
    """Both catalogs of one process, in a form that pickles.

    Attributes:
        token: the process's catalog token (see `restore`).
        files: ``(module name, file)`` of each file to run again, in registration order.
        datasets: name → pickled registered function.
        metadata: name → (values, lazy values), each a dict of key → pickled object.
        rerun: name → the file whose run registers that data set (its function didn't pickle).
        unavailable: name → why its function can't be recreated (a lambda typed in a notebook).
    A data set that can't be recreated raises RegistrationError, saying why, when it is used.
    """

    token: str
    files: list[tuple[str, str]] = field(default_factory=list)
    datasets: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, tuple[dict[str, bytes], dict[str, bytes]]] = field(default_factory=dict)
    rerun: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def snapshot() -> Snapshot:
    """The data sets and metadata registered in this process, ready to `restore` elsewhere."""
    snap = Snapshot(_TOKEN[0])
    for name, fn in DatasetCatalog._fns.items():
        blob = _pickled(fn)
        if blob is not None:
            snap.datasets[name] = blob
            continue
        source = _source_file(fn)
        if isinstance(source, str):
            snap.unavailable[name] = f"data set '{name}' is registered with {fn!r}, which {source}"
        else:
            _add_file(snap, source)
            snap.rerun[name] = source[1]
    for name, meta in MetadataCatalog._metadata.items():
        values, lazy = {}, {}
        for key, value in [*meta.__dict__.items(), *meta.__dict__["_lazy"].items()]:
            if key.startswith("_") or key == "name":
                continue
            blob = _pickled(value)
            source = _source_file(value) if blob is None and callable(value) else None
            if blob is not None:
                (lazy if key in meta.__dict__["_lazy"] else values)[key] = blob
            elif isinstance(source, tuple):
                _add_file(snap, source)  # running it again sets the value
            else:
                logger.warning("metadata '%s' of data set '%s' (%r) can't be sent to other processes (DDP ranks, "
                               "loader workers): it stays unset there", key, name, value)
        snap.metadata[name] = (values, lazy)
    return snap


def restore(snap: Snapshot) -> None:
    """Register in this process what `snap` holds; nothing to do in the process that took it
    or in one forked from it (same token), or when restored already."""
    if snap.token == _TOKEN[0]:
        return
    errors = {}
    for module, path in snap.files:
        try:
            _run_file(module, path)
        except Exception as exc:  # reported when a data set it should register is used
            errors[path] = f" ({type(exc).__name__}: {exc})"
    for name, blob in snap.datasets.items():
        fn, error = _unpickled(blob)
        if error is None:
            DatasetCatalog.register(name, fn, overwrite=True)
        else:
            snap.unavailable[name] = f"data set '{name}' can't be unpickled ({error})"
    for name, path in snap.rerun.items():
        if name not in DatasetCatalog:
            snap.unavailable[name] = f"data set '{name}' was not registered again by running {path}{errors.get(path, '')}"
    for name, reason in snap.unavailable.items():
        DatasetCatalog.register(name, functools.partial(_unavailable, reason), overwrite=True)
    for name, (values, lazy) in snap.metadata.items():
        meta = MetadataCatalog.get(name)
        if name not in snap.rerun:
            meta.clear()  # exactly the registering process's metadata, not a mix
        for key, blob in [*values.items(), *lazy.items()]:
            value, error = _unpickled(blob)
            if error is not None:
                logger.warning("metadata '%s' of data set '%s' stays unset in this process: %s", key, name, error)
            elif key in lazy:
                meta.set_lazy(key, value)
            elif key not in meta.__dict__:
                meta.__dict__[key] = value
    _TOKEN[0] = snap.token


def _unavailable(reason: str) -> list[dict]:
    raise RegistrationError(f"{reason}: this process (a DDP rank or loader worker started fresh) can't recreate it. "
                            "Register it in a recipe file or with a function of an importable module.")


def carry_registrations(fn: Callable) -> Callable:
    """`fn` wrapped to `restore` this process's data sets (as of now) before it runs: pass the
    result as the target of a spawned process (e.g. the worker of ``torch.multiprocessing``)."""
    return functools.partial(_call_with_registrations, snapshot(), fn)


def _call_with_registrations(snap: Snapshot, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    restore(snap)
    return fn(*args, **kwargs)


class _ReferencePickler(pickle.Pickler):
    """Pickles functions and classes only by a name that a fresh process can import and this
    one can already look up: never imports a module to check (that would run a recipe again)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)):
            name = getattr(obj, "__module__", None) or ""
            found = sys.modules.get(name) if _importable(name) else None
            for part in obj.__qualname__.split("."):
                found = getattr(found, part, None)
            if found is not obj:
                raise pickle.PicklingError(f"{obj!r} can't be looked up by name in another process")
        return NotImplemented


@functools.cache
def _importable(module: str) -> bool:
    """Whether a fresh process finds `module` by import (a recipe file loaded by path is not)."""
    if module in ("__main__", "__mp_main__"):  # multiprocessing runs the main script in its children
        return True
    top = module.partition(".")[0]
    return any(finder.find_spec(top, None) is not None for finder in sys.meta_path if hasattr(finder, "find_spec"))


def _pickled(obj: Any) -> bytes | None:
    """`obj` pickled, or None if it holds a function or class another process can't import."""
    buffer = io.BytesIO()
    try:
        _ReferencePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return buffer.getvalue()


def _unpickled(blob: bytes) -> tuple[Any, str | None]:
    """(the object in `blob`, None), or (None, why) if this process can't load it (e.g. a
    function of a notebook's ``__main__``)."""
    try:
        return pickle.loads(blob), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _source_file(fn: Callable) -> tuple[str, str] | str:
    """``(module name, file)`` whose run registers `fn` again, or why there is none."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    code = getattr(target, "__code__", None) or getattr(getattr(target, "__call__", None), "__code__", None)
    module = getattr(target, "__module__", None)
    if code is None or code.co_filename.startswith("<"):
        return "has no source file (defined interactively?)"
    if module in ("__main__", "__mp_main__"):
        return "is defined in the main script"
    return module, code.co_filename


def _add_file(snap: Snapshot, source: tuple[str, str]) -> None:
    if source not in snap.files:
        snap.files.append(source)


def _run_file(module: str, path: str) -> None:
    """Run the file of `module` again: by import if it can be imported by that name (a module
    that registers at import), else as the recipe file it is, loaded as `detrun.config` loads
    recipes (then a ``_target_`` in it that the process looks up later finds it loaded)."""
    if _importable(module):
        importlib.import_module(module)
    else:
        from detrun.config import get_recipe  # config builds on data: imported when needed

        get_recipe(path)
