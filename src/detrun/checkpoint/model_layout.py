"""Where the parts of the model being loaded live, read from its state-dict keys.

Converters place backbone-only checkpoints under the model's ResNet ("trunk") whatever the
nesting (``backbone.bottom_up.`` in an FPN detector, ``backbone.`` without FPN, nothing for a
bare ResNet), instead of assuming one layout.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from .reading import CheckpointError

_STEM_KEY = "stem.conv1.weight"


class ModelLayout:
    """Prefixes of the model's parts, for converters.

    Args:
        model_keys: the model's state-dict keys.
        path: the checkpoint being converted (for error messages).
        shapes: key -> shape of the model's tensors, where known (converters that resize, e.g.
            position embeddings, need them).
    """

    def __init__(self, model_keys: Iterable[str], path: str | Path, shapes: dict[str, tuple] | None = None):
        self.keys = list(model_keys)
        self.path = path
        self.shapes = dict(shapes or {})

    @property
    def trunk(self) -> str | None:
        """Prefix of the model's ResNet (``"backbone.bottom_up."``), or None if it has none."""
        return self.prefix_of(_STEM_KEY)

    def require_trunk(self, what: str) -> str:
        """`trunk`, or a CheckpointError saying that `what` needs a ResNet in the model."""
        trunk = self.trunk
        if trunk is None:
            raise CheckpointError(
                f"weights file '{self.path}' is {what}, but the model has no ResNet to put it in "
                f"(no parameter ending in '{_STEM_KEY}'); load it into a model with a detrun ResNet backbone"
            )
        return trunk

    def prefix_of(self, suffix: str, default: str | None = None) -> str | None:
        """The prefix of the first model key ending in ``.`` + `suffix` (or equal to it), else `default`."""
        for key in self.keys:
            if key == suffix:
                return ""
            if key.endswith("." + suffix):
                return key[: -len(suffix)]
        return default

    def fpn_first_level(self) -> int:
        """Pyramid level k of the model's finest FPN lateral conv ``fpn_lateral{k}`` (2 if none)."""
        levels = [int(m[1]) for k in self.keys if (m := re.search(r"fpn_lateral(\d+)\.", k))]
        return min(levels, default=2)


def rename_into_trunk(weights: dict, layout: ModelLayout, what: str, rename: Callable[[str], str | None],
                      ignore: re.Pattern) -> tuple[dict, list[str], list[str]]:
    """Rename a backbone-only checkpoint's keys with `rename` and put them under the model's trunk.

    Args:
        weights: file key -> tensor.
        layout: the model being loaded.
        what: what the file is, for the error if the model has no ResNet.
        rename: file key -> trunk-relative detrun name, or None if it isn't a trunk tensor.
        ignore: file keys that are deliberately not loaded (e.g. the ImageNet classifier).

    Returns:
        (state_dict, ignored keys, unknown keys).
    """
    trunk = layout.require_trunk(what)
    converted, ignored, unknown = {}, [], []
    for key, value in weights.items():
        new = rename(key)
        if new is not None:
            converted[trunk + new] = value
        elif ignore.search(key):
            ignored.append(key)
        else:
            unknown.append(key)
    return converted, ignored, unknown
