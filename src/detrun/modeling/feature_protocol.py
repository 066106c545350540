"""The feature protocol: every part that reads backbone features says which, and what it assumes.

A meta-architecture checks all of its parts against ``backbone.output_shape()`` when it is
built. A stride typed in a recipe that disagrees with the backbone (anchor strides, pooler
scales) otherwise trains silently with misplaced anchors or pools from the wrong place.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .shape_spec import ShapeSpec


@dataclass(frozen=True)
class FeatureUse:
    """Backbone features one part reads.

    Attributes:
        names_key: where the part was given the names, relative to the part (``"in_features"``).
        names: the feature names it reads, in order.
        strides_key: where the part was given per-level strides or scales it relies on
            (``"anchor_generator.strides"``); None when it relies on none.
        strides: those values, one per name (None: nothing to check, e.g. inferred strides).
        as_scales: the values are feature pixels per input pixel (1 / stride), as ROI poolers take.
    """

    names_key: str
    names: tuple[str, ...]
    strides_key: str | None = None
    strides: tuple[float, ...] | None = None
    as_scales: bool = False


class ReadsFeatures:
    """Mixin of parts that read backbone features: they list them in `feature_uses`."""

    def feature_uses(self) -> list[FeatureUse]:
        """The features this part reads (see `FeatureUse`)."""
        raise NotImplementedError(f"{type(self).__name__} must list the backbone features it reads")


def check_feature_uses(shapes: dict[str, ShapeSpec], parts: dict[str, nn.Module]) -> None:
    """Raise ValueError naming the part, key and feature if a part disagrees with `shapes`.

    Args:
        shapes: the backbone's ``output_shape()``.
        parts: config-path prefix -> part (``{"proposal_generator": rpn, "": meta_arch}``); parts
            that don't implement `ReadsFeatures` are skipped (a custom part may read anything).
    """
    for prefix, part in parts.items():
        if not isinstance(part, ReadsFeatures):
            continue
        for use in part.feature_uses():
            _check_use(shapes, use, f"{prefix}." if prefix else "")


def _check_use(shapes: dict[str, ShapeSpec], use: FeatureUse, prefix: str) -> None:
    names = list(use.names)
    missing = [n for n in names if n not in shapes]
    if missing:
        raise ValueError(f"{prefix}{use.names_key} = {names} names {missing}, which the backbone does not output "
                         f"(it outputs {list(shapes)})")
    if use.strides is None:
        return
    declared = list(use.strides)
    if use.as_scales:
        expected = [1.0 / shapes[f].stride for f in names]
        agrees = len(declared) == len(expected) and all(abs(a - b) <= 1e-9 for a, b in zip(declared, expected))
        what = "scales", " (1 / stride)"
    else:
        expected = [shapes[f].stride for f in names]
        agrees = [int(s) for s in declared] == expected
        what = "strides", ""
    if not agrees:
        raise ValueError(f"{prefix}{use.strides_key} = {declared}, but the backbone features {names} have "
                         f"{what[0]} {expected}{what[1]}")
