"""Check, when a detector is built, that its heads read features the backbone really has.

A stride typed in a recipe that disagrees with the backbone (anchor strides, pooler scales)
otherwise trains silently with misplaced anchors or pools from the wrong place.
"""
from __future__ import annotations

from torch import nn

from ..shape_spec import ShapeSpec


def check_feature_contract(shapes: dict[str, ShapeSpec], proposal_generator: nn.Module, roi_heads: nn.Module) -> None:
    """Raise ValueError naming the part and the feature if the heads disagree with `shapes`.

    Looks at the attributes the standard parts expose and skips those a custom part lacks:
    ``proposal_generator.in_features`` and ``.anchor_generator.strides`` (None = inferred),
    ``roi_heads.{box,mask}_in_features`` and ``.{box,mask}_pooler.scales``.
    """
    in_features = getattr(proposal_generator, "in_features", None)
    if in_features is not None:
        _check_names("proposal_generator.in_features", in_features, shapes)
        anchor_generator = getattr(proposal_generator, "anchor_generator", None)
        strides = getattr(anchor_generator, "strides", None)
        if strides is not None:
            expected = [shapes[f].stride for f in in_features]
            if [int(s) for s in strides] != expected:
                raise ValueError(f"proposal_generator.anchor_generator.strides = {list(strides)}, but the backbone "
                                 f"features {list(in_features)} have strides {expected}")
    for head in ("box", "mask"):
        names = getattr(roi_heads, f"{head}_in_features", None)
        pooler = getattr(roi_heads, f"{head}_pooler", None)
        if names is None:
            continue
        _check_names(f"roi_heads.{head}_in_features", names, shapes)
        scales = getattr(pooler, "scales", None)
        if scales is not None:
            expected = [1.0 / shapes[f].stride for f in names]
            if len(scales) != len(expected) or any(abs(a - b) > 1e-9 for a, b in zip(scales, expected)):
                raise ValueError(f"roi_heads.{head}_pooler.scales = {list(scales)}, but the backbone features "
                                 f"{list(names)} have scales {expected} (1 / stride)")


def _check_names(where: str, names: list[str], shapes: dict[str, ShapeSpec]) -> None:
    missing = [n for n in names if n not in shapes]
    if missing:
        raise ValueError(f"{where} = {list(names)} names {missing}, which the backbone does not output "
                         f"(it outputs {list(shapes)})")
