"""Read `.pkl` weight files without executing code from them.

`pickle.load` calls whatever functions a file names. Detectron2's model-zoo and Caffe2 `.pkl`
files only need numpy arrays inside dicts and lists, so the unpickler here resolves just the
few numpy reconstruction helpers and rejects every other global; the result is then checked
to contain nothing but containers, scalars, strings and numeric arrays.
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
from typing import Any, BinaryIO

import numpy as np

# Globals a pickled numpy array (protocols 2-5, numpy 1.x and 2.x module names) refers to.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # Python 3 pickles bytes for protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(0))[0]
    _ALLOWED_GLOBALS[(_module, "scalar")] = np.float32(0).__reduce__()[0]
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_module, "_frombuffer")] = np.zeros(0).__reduce_ex__(5)[0]

_SCALARS = (str, bytes, int, float, bool, type(None), np.generic)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than numpy arrays, containers and scalars."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': weight files may only hold numpy arrays, "
                "dicts, lists and scalars"
            ) from None


def safe_load_pickle(file: BinaryIO | bytes) -> Any:
    """Unpickle `file` (a binary file object or bytes) allowing only weight-file content.

    Strings in Python 2 pickles (Caffe2-era files) are decoded as latin-1.

    Raises:
        UnsafePickleError: the file names a disallowed global or holds an object array.
        pickle.UnpicklingError, EOFError: the file is not a (complete) pickle.
    """
    if isinstance(file, bytes):
        file = io.BytesIO(file)
    obj = _RestrictedUnpickler(file, encoding="latin1").load()
    _check_content(obj, "<root>")
    return obj


def _check_content(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_content(key, where)
            _check_content(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_content(value, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UnsafePickleError(f"{where} is a numpy array of Python objects; only numeric arrays are allowed")
    elif not isinstance(obj, _SCALARS):
        raise UnsafePickleError(f"{where} is a {type(obj).__name__}; only arrays, containers and scalars are allowed")
