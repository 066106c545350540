"""Name → data set and name → metadata registries (the one place a data set is looked up by name).

A data set is registered as a function returning its records (list[dict], see `detrun.data`);
it runs only when the data set is asked for, so registering every built-in name costs nothing.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from detrun.errors import UserError


class UnknownDatasetError(UserError, KeyError):
    """A data set name that nobody registered."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def _unknown(name: str, names: list[str]) -> UnknownDatasetError:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UnknownDatasetError(
        f"data set '{name}' is not registered.{hint} Registered: {', '.join(sorted(names))}. "
        "Register your own with detrun.data.register_coco_instances(name, json_file, image_root) "
        "or DatasetCatalog.register(name, fn)."
    )


class _DatasetCatalog:
    """Global registry name → function returning list[dict] records. Use the `DatasetCatalog` instance."""

    def __init__(self) -> None:
        self._fns: dict[str, Callable[[], list[dict]]] = {}

    def register(self, name: str, fn: Callable[[], list[dict]], *, overwrite: bool = False) -> None:
        """Register `fn` (no arguments → list[dict]) under `name`; re-registering needs ``overwrite=True``."""
        if not callable(fn):
            raise TypeError(f"DatasetCatalog.register('{name}', fn): fn must be callable, got {type(fn)}")
        if name in self._fns and not overwrite:
            raise ValueError(f"data set '{name}' is already registered (pass overwrite=True to replace it)")
        self._fns[name] = fn

    def get(self, name: str, *, on_error: str | None = None, log=None) -> list[dict]:
        """Call the function registered as `name` and return its records.

        `on_error` ("raise" / "skip" bad annotations), if given, goes to a function that takes an
        ``on_error`` argument (the COCO and shapes loaders do) instead of what it was registered with.
        `log` (a `ProblemLog`), if given, goes to a function that takes a ``log`` argument, which
        then adds its problems there (``task=check_data`` lists them) instead of raising.
        """
        if name not in self._fns:
            raise _unknown(name, list(self._fns))
        fn = self._fns[name]
        if log is not None and _takes(fn, "log"):
            records = fn(log=log)
        else:
            records = fn(on_error=on_error) if on_error is not None and _takes(fn, "on_error") else fn()
        if not isinstance(records, list):
            raise TypeError(f"the function registered for data set '{name}' returned {type(records)}, not a list of dicts")
        return records

    def list(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: str) -> bool:
        return name in self._fns

    def remove(self, name: str) -> None:
        self._fns.pop(name, None)


def _takes(fn: Callable, argument: str) -> bool:
    try:
        return argument in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


class Metadata:
    """Facts about a data set read by other parts: thing_classes, thing_colors, keypoint_names,
    keypoint_flip_map, evaluator_type, json_file, image_root, thing_dataset_id_to_contiguous_id, ...

    A value may be registered lazily (``set_lazy(key, fn)``): computed on first read, e.g. a
    generated data set's json_file, which triggers generation only when someone needs the file.
    """

    def __init__(self, name: str):
        self.__dict__["name"] = name
        self.__dict__["_lazy"] = {}

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # pickle/copy probe dunders before __dict__ is filled
            raise AttributeError(key)
        lazy = self.__dict__["_lazy"]
        if key in lazy:
            value = lazy.pop(key)()
            self.__dict__[key] = value
            return value
        known = sorted(k for k in self.__dict__ if not k.startswith("_")) + sorted(lazy)
        raise AttributeError(f"metadata of data set '{self.name}' has no '{key}' (it has: {', '.join(known)})")

    def __setattr__(self, key: str, value: Any) -> None:
        self.set(**{key: value})

    def set(self, **kwargs: Any) -> Metadata:
        """Set values; changing an existing one to something different is an error (two sources disagree)."""
        for key, value in kwargs.items():
            if key in self.__dict__ and self.__dict__[key] != value:
                raise ValueError(
                    f"metadata '{key}' of data set '{self.name}' is already {self.__dict__[key]!r}; refusing to "
                    f"change it to {value!r} (MetadataCatalog.remove('{self.name}') first to start over)"
                )
            self.__dict__["_lazy"].pop(key, None)
            self.__dict__[key] = value
        return self

    def set_lazy(self, key: str, fn: Callable[[], Any]) -> None:
        """Compute `key` with `fn()` the first time it is read (unless set before)."""
        if key not in self.__dict__:
            self.__dict__["_lazy"][key] = fn

    def clear(self) -> None:
        """Forget every value, in place (objects holding this Metadata see the new values set next)."""
        name = self.name
        self.__dict__.clear()
        self.__dict__.update(name=name, _lazy={})

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            return default

    def as_dict(self) -> dict[str, Any]:
        """Every value, computing lazy ones."""
        for key in list(self.__dict__["_lazy"]):
            getattr(self, key)
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return f"Metadata({shown}, lazy={sorted(self.__dict__['_lazy'])})"


class _MetadataCatalog:
    """Global name → Metadata. ``get`` creates an empty Metadata for a new name. Use `MetadataCatalog`."""

    def __init__(self) -> None:
        self._metadata: dict[str, Metadata] = {}

    def get(self, name: str) -> Metadata:
        if name not in self._metadata:
            self._metadata[name] = Metadata(name)
        return self._metadata[name]

    def list(self) -> list[str]:
        return sorted(self._metadata)

    def remove(self, name: str) -> None:
        self._metadata.pop(name, None)


DatasetCatalog = _DatasetCatalog()
MetadataCatalog = _MetadataCatalog()
