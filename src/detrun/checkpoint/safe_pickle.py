"""Read `.pkl` weight files without executing code from them.

`pickle.load` calls whatever functions a file names. Detectron2's model-zoo and Caffe2 `.pkl`
files only need numpy arrays inside dicts and lists, so the unpickler here resolves just the
few numpy reconstruction helpers and rejects every other global; the result is then checked
to contain nothing but containers, scalars, strings and numeric arrays.

Nor can a file make us allocate more than it holds: an array's data is stored in the file, so
an array (shape x item size) larger than the whole file is refused before it is allocated.
"""
from __future__ import annotations

import codecs
import collections
import io
import math
import os
import pickle
from typing import Any, BinaryIO

import numpy as np

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]

# Globals a pickled numpy array (protocols 2-5, numpy 1.x and 2.x module names) refers to.
# The two that allocate an array of a given shape (`_reconstruct`, `ndarray`) are replaced by
# size-checking versions in `_RestrictedUnpickler.find_class`.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # Python 3 pickles bytes for protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _RECONSTRUCT
    _ALLOWED_GLOBALS[(_module, "scalar")] = np.float32(0).__reduce__()[0]
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_module, "_frombuffer")] = np.zeros(0).__reduce_ex__(5)[0]

_SCALARS = (str, bytes, int, float, bool, type(None), np.generic)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than numpy arrays, containers and scalars."""


class _SizedArray(np.ndarray):
    """What the unpickler builds arrays as until they are filled: `__setstate__` (the pickle's
    BUILD step, which allocates the shape it is given) checks the size first. `_check_content`
    turns them back into plain arrays."""

    max_bytes = 0

    def __setstate__(self, state) -> None:
        # state = ([version,] shape, dtype, is_fortran, data); shape and dtype come from the file.
        if isinstance(state, tuple) and len(state) in (4, 5):
            _check_size(state[-4], state[-3], self.max_bytes)
        super().__setstate__(state)


def _check_size(shape, dtype, max_bytes: int) -> None:
    """Refuse an array of `shape` x `dtype` larger than `max_bytes` (the file's size)."""
    try:
        dims = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError) as exc:
        raise UnsafePickleError(f"an array with shape {shape!r} and dtype {dtype!r} is not a numeric array") from exc
    nbytes = math.prod(dims) * itemsize
    if any(d < 0 for d in dims) or nbytes > max_bytes:
        raise UnsafePickleError(
            f"an array of shape {dims} and dtype {np.dtype(dtype)} would take {nbytes} bytes, more than the whole "
            f"file ({max_bytes} bytes): the file is corrupt or crafted, not a weight file")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, *, max_bytes: int, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.sized_array = type("_SizedArray", (_SizedArray,), {"max_bytes": max_bytes})

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': weight files may only hold numpy arrays, "
                "dicts, lists and scalars"
            ) from None
        if found is np.ndarray:
            return self.new_array
        if found is _RECONSTRUCT:
            return self.reconstruct
        return found

    def new_array(self, shape, dtype=float, *args: Any, **kwargs: Any) -> np.ndarray:
        """``numpy.ndarray(shape, dtype, ...)`` called by the pickle, after the size check."""
        _check_size(shape, dtype, self.sized_array.max_bytes)
        return self.sized_array(shape, dtype, *args, **kwargs)

    def reconstruct(self, subtype, shape, dtype) -> np.ndarray:
        """numpy's ``_reconstruct(ndarray, shape, dtype)`` (an empty array that BUILD then fills),
        after the size check; the array checks BUILD's shape itself (`_SizedArray`)."""
        if subtype != self.new_array:  # bound methods: equal, not identical
            raise UnsafePickleError(f"refusing to build an array of type {subtype!r}; only numpy.ndarray is allowed")
        _check_size(shape, dtype, self.sized_array.max_bytes)
        return _RECONSTRUCT(self.sized_array, shape, dtype)


def safe_load_pickle(file: BinaryIO | bytes) -> Any:
    """Unpickle `file` (a binary file object or bytes) allowing only weight-file content.

    Strings in Python 2 pickles (Caffe2-era files) are decoded as latin-1.

    Raises:
        UnsafePickleError: the file names a disallowed global, holds an object array, or asks
            for an array larger than the file.
        pickle.UnpicklingError, EOFError: the file is not a (complete) pickle.
    """
    if isinstance(file, bytes):
        file = io.BytesIO(file)
    obj = _RestrictedUnpickler(file, max_bytes=_size(file), encoding="latin1").load()
    return _check_content(obj, "<root>")


def _size(file: BinaryIO) -> int:
    """Bytes in `file` (from its current position on)."""
    try:
        return os.fstat(file.fileno()).st_size - file.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):  # BytesIO and other in-memory files
        start = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(start)
        return end - start


def _check_content(obj: Any, where: str) -> Any:
    """`obj` if it holds only containers, scalars and numeric arrays (as plain ndarrays), else raise."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_content(key, where)
            obj[key] = _check_content(value, f"{where}[{key!r}]")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            obj[i] = _check_content(value, f"{where}[{i}]")
    elif isinstance(obj, tuple):
        return tuple(_check_content(value, f"{where}[{i}]") for i, value in enumerate(obj))
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafePickleError(f"{where} is a numpy array of Python objects; only numeric arrays are allowed")
        return obj.view(np.ndarray)
    elif not isinstance(obj, _SCALARS):
        raise UnsafePickleError(f"{where} is a {type(obj).__name__}; only arrays, containers and scalars are allowed")
    return obj
