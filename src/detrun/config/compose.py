"""Command-line style overrides on recipes, with Hydra's grammar and semantics.

`compose` gives a notebook exactly the tree ``python -m detrun`` resolves for the same
arguments, without starting (or disturbing) a Hydra application.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import GrammarParseError, InterpolationResolutionError

from detrun.errors import UserError

from .lazy import locate
from .recipes import DEFAULT_RECIPE, SHORT_NAME_GROUPS, RecipeError, get_recipe

# Keys the command line adds next to the recipe: what to do, and that task's arguments.
TASK_KEYS = {"task": "train", "dataset": None, "input": None, "output": None, "format": None, "predictions": None}
RECIPE_GROUP = "recipe"
_MISSING = object()


class OverrideError(UserError, ValueError):
    """An override names a key that doesn't exist, or can't be parsed."""


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Parse ``key=value`` strings with Hydra's override grammar."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise OverrideError(str(exc).splitlines()[0]) from exc


def recipe_choice(overrides: Sequence[Override], default: str = DEFAULT_RECIPE) -> str:
    """The recipe chosen by a ``recipe=NAME`` override, else `default`."""
    for override in overrides:
        if override.key_or_group == RECIPE_GROUP and not override.is_sweep_override():
            return str(override.value())
    return default


def all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key path in `cfg` (containers and leaves), e.g. ``model.backbone.depth``."""
    keys = []
    items = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else enumerate(cfg)
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        keys.append(path)
        if isinstance(value, (DictConfig, ListConfig)):
            keys.extend(all_keys(value, path))
    return keys


def is_group_override(override: Override) -> bool:
    """True for a choice of the recipe or of a short name (``recipe=``, ``model/backbone=``)."""
    return override.key_or_group == RECIPE_GROUP or override.key_or_group in SHORT_NAME_GROUPS


def apply_short_names(cfg: DictConfig, overrides: Sequence[Override]) -> DictConfig:
    """Apply ``group=NAME`` short-name choices (e.g. ``model/backbone=R101``) to `cfg` in place."""
    for override in overrides:
        key = override.key_or_group
        if "/" in key and key not in SHORT_NAME_GROUPS:
            raise OverrideError(f"unknown choice group '{key}'; the groups are: "
                                f"{', '.join([RECIPE_GROUP, *SHORT_NAME_GROUPS])}")
        if key in SHORT_NAME_GROUPS:
            if override.is_sweep_override():
                raise OverrideError(f"'{override.input_line}': sweep over short names isn't supported; "
                                    "sweep over recipe files or keys instead")
            locate(SHORT_NAME_GROUPS[key])(cfg, str(override.value()))
    return cfg


def check_override_keys(cfg: DictConfig, overrides: Sequence[Override]) -> None:
    """Raise OverrideError for an override that changes or deletes a key `cfg` lacks,
    or adds (``+key``) one it already has. Sweep values are not looked at."""
    for override in overrides:
        key = override.key_or_group
        if is_group_override(override) or key.startswith("hydra.") or key == "hydra":
            continue
        exists = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False) is not _MISSING
        if override.type in (OverrideType.CHANGE, OverrideType.DEL) and not exists:
            raise OverrideError(_missing_key_message(cfg, key))
        if override.type == OverrideType.ADD and exists:
            raise OverrideError(
                f"'+{key}' adds a key, but '{key}' already exists: write '{key}=VALUE' to change it "
                f"(or '++{key}=VALUE' to set it either way)."
            )


def check_override_values(cfg: DictConfig, overrides: Sequence[Override]) -> None:
    """Raise OverrideError for an override that gives a number the recipe holds a value of another type.

    A key whose recipe value is an int takes an int (``trainer.max_iter=abc`` and ``=1.5`` are
    refused); a float takes any number (``optimizer.lr=abc`` is refused). ``null`` and
    interpolations pass, and so does anything for other keys (``trainer.resume`` takes a bool or
    a path). Each value of a sweep is checked.
    """
    for override in overrides:
        key = override.key_or_group
        if is_group_override(override) or override.type == OverrideType.DEL or key.split(".")[0] == "hydra":
            continue
        current = _written_value(cfg, key)
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            continue
        if override.is_sweep_override():
            enumerable = override.is_discrete_sweep() and override.value_type != ValueType.GLOB_CHOICE_SWEEP
            values = list(override.sweep_iterator()) if enumerable else []
        else:
            values = [override.value()]
        expected = "an integer" if isinstance(current, int) else "a number"
        for value in values:
            value = getattr(value, "text", value)  # a quoted sweep element comes as a QuotedString
            if value is None or (isinstance(value, str) and "${" in value):
                continue
            ok = isinstance(value, int) if isinstance(current, int) else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok:
                raise OverrideError(f"'{override.input_line}': {key} takes {expected} (the recipe has "
                                    f"{current}), not {value!r}")


def check_overrides(cfg: DictConfig, overrides: Sequence[Override]) -> None:
    """`check_override_keys` and `check_override_values`: what the command line checks before Hydra runs."""
    check_override_keys(cfg, overrides)
    check_override_values(cfg, overrides)


def check_interpolations(cfg: DictConfig) -> None:
    """Raise RecipeError naming the key and its interpolation if one of `cfg`'s interpolations
    can't be resolved (e.g. ``${trainer.seed}`` after ``~trainer.seed`` deleted the key it reads)."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except (InterpolationResolutionError, GrammarParseError) as exc:
        key = getattr(exc, "full_key", None) or "?"
        written = _written_value(cfg, key)
        shown = f" = {written!r}" if written is not None else ""
        raise RecipeError(f"recipe key '{key}'{shown} can't be resolved: {str(exc).splitlines()[0]}") from exc


def _written_value(cfg: DictConfig, key: str):
    """The value at dotted `key` (``a.b``, ``a.b[0]``) as written, interpolations unresolved; None if absent."""
    node = OmegaConf.to_container(cfg, resolve=False)
    for part in re.findall(r"[^.\[\]]+", key):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return node


def _missing_key_message(cfg: DictConfig, key: str) -> str:
    candidates = [k for k in all_keys(cfg) if not k.endswith("._target_")]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    hint = f" Closest existing keys: {', '.join(close)}." if close else ""
    return f"the recipe has no key '{key}'.{hint} Write '+{key}=VALUE' to add a new key."


def apply_overrides(cfg: DictConfig, overrides: Sequence[str] | Sequence[Override]) -> DictConfig:
    """Apply command-line overrides to `cfg` in place and return it.

    ``key=v`` changes an existing key, ``+key=v`` adds one, ``++key=v`` sets either way,
    ``~key`` deletes. A missing key raises OverrideError naming the closest existing keys.
    Group choices (``recipe=``, ``model/backbone=``) are ignored here: see `compose`.
    """
    parsed = [o if isinstance(o, Override) else None for o in overrides]
    if any(p is None for p in parsed):
        parsed = parse_overrides(overrides)
    for override in parsed:
        if override.is_sweep_override():
            raise OverrideError(
                f"'{override.input_line}' is a sweep; run it with 'python -m detrun -m ...' "
                "(compose builds a single config)."
            )
    check_overrides(cfg, parsed)
    for override in parsed:
        key = override.key_or_group
        if is_group_override(override):
            continue
        if override.type == OverrideType.DEL:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            with open_dict(node):
                del node[leaf]
            continue
        value = override.value()
        with open_dict(cfg):
            OmegaConf.update(cfg, key, value, merge=True, force_add=override.type != OverrideType.CHANGE)
    return cfg


def base_config(recipe: str) -> DictConfig:
    """The recipe plus the task keys, as Hydra composes it before overrides."""
    return OmegaConf.merge(get_recipe(recipe), TASK_KEYS)


def compose(recipe: str = DEFAULT_RECIPE, overrides: Sequence[str] = ()) -> DictConfig:
    """Return what ``python -m detrun recipe=RECIPE *overrides`` would resolve, as a DictConfig.

    `recipe` is a built-in name, a ``.py`` recipe file or a saved ``recipe.yaml`` (see `get_recipe`).

    Raises:
        RecipeError: unknown recipe, a recipe file that fails to load, or an interpolation that
            can't be resolved (named with its key).
        OverrideError: an override of a missing key, or a value of the wrong type for a number.

    Example::

        cfg = compose("mask_rcnn_R50", overrides=["trainer.gpus=1", "optimizer.lr=0.01"])
        model = instantiate(cfg.model)
    """
    parsed = parse_overrides(overrides)
    cfg = apply_short_names(base_config(recipe_choice(parsed, default=recipe)), parsed)
    apply_overrides(cfg, parsed)
    check_interpolations(cfg)
    return cfg
