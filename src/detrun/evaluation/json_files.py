"""JSON as evaluation writes it: always valid, with null for NaN and infinities.

Python's json writes NaN as the bare word ``NaN``, which JSON doesn't have (and other readers
refuse). Metrics are NaN where nothing could be scored (APl without large objects), and scores
of a diverged model can be NaN too.
"""
from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf) inside dicts, lists and tuples replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, **kwargs)`` with NaN and infinities written as null (see `finite`)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
