"""LazyCall: describe a call as an OmegaConf node, build it later with `instantiate`.

A node is a DictConfig ``{"_target_": "dotted.path.to.callable", **kwargs}``. Nodes nest,
hold lists and interpolations, and dump to YAML unchanged, because a target is stored as
its import path, never as the object itself: ``"torch.optim.SGD"``, or
``"/abs/path/my_recipe.py:MyBackbone"`` for a class defined in a user recipe file.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from detrun.errors import UserError

from .recipes import USER_MODULE_PREFIX, RecipeError, recipe_module

TARGET_KEY = "_target_"
# Between a recipe file's path and an object's name in a target defined in that file.
FILE_TARGET_SEPARATOR = ":"


class InstantiationError(UserError, RuntimeError):
    """Building a node failed; the message names the node's config path."""


def _import_path(target: Callable) -> str:
    """Return the dotted import path of `target`, refusing objects that can't be re-imported."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if module is None or qualname is None or "<" in qualname:
        raise TypeError(
            f"LazyCall needs an importable, named callable; got {target!r}. Lambdas and "
            "functions defined inside other functions can't be saved to YAML: define it at "
            "module level and pass that."
        )
    if module.startswith(USER_MODULE_PREFIX):
        # Defined in a user recipe file, whose module name no other process can import: name the file.
        return f"{sys.modules[module].__file__}{FILE_TARGET_SEPARATOR}{qualname}"
    # Prefer the shortest public path that resolves to the same object
    # (torch.optim.SGD rather than torch.optim.sgd.SGD).
    parts = module.split(".")
    for i in range(1, len(parts)):
        short = ".".join(parts[:i])
        try:
            if locate(f"{short}.{qualname}") is target:
                return f"{short}.{qualname}"
        except ImportError:
            continue
    return f"{module}.{qualname}"


class LazyCall:
    """``LazyCall(target)(**kwargs)`` returns a DictConfig node calling ``target(**kwargs)``.

    Example::

        model = L(FPN)(bottom_up=L(ResNet)(depth=50), in_features=["res2", "res3"], out_channels=256)
        model.out_channels = 128      # recipes change nodes by assignment
        fpn = instantiate(model)      # builds ResNet first, then FPN
    """

    def __init__(self, target: Callable | str):
        if isinstance(target, str):
            self.target = target
        elif callable(target):
            self.target = _import_path(target)
        else:
            raise TypeError(f"LazyCall target must be a callable or a dotted path, got {target!r}")

    def __call__(self, **kwargs: Any) -> DictConfig:
        node = {TARGET_KEY: self.target}
        node.update(kwargs)
        return OmegaConf.create(node, flags={"allow_objects": False})


L = LazyCall


def locate(path: str) -> Any:
    """Import ``"package.module.attr.attr"``, trying the longest importable module prefix, or
    ``"/path/to/recipe.py:Name.attr"``, an object defined in a recipe file (see `recipe_module`)."""
    file, separator, attrs = path.rpartition(FILE_TARGET_SEPARATOR)
    if separator and file.endswith(".py"):
        try:
            obj = recipe_module(file)
        except RecipeError as exc:
            raise ImportError(f"cannot import '{path}': {exc}") from exc
        return _getattrs(obj, attrs.split("."), path, None)
    parts = path.split(".")
    if not path or not all(parts):
        raise ImportError(f"'{path}' is not a dotted import path")
    error: Exception | None = None
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only swallow the error if it's about this very module, not one it imports.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            error = exc
            continue
        return _getattrs(obj, parts[split:], path, error)
    raise ImportError(f"cannot import '{path}': {error}")


def _getattrs(obj: Any, attrs: Sequence[str], path: str, error: Exception | None) -> Any:
    """``obj.attrs[0].attrs[1]...``, or ImportError naming `path` (and the import `error` that led here)."""
    for attr in attrs:
        if not hasattr(obj, attr):
            reason = f": {error}" if error else ""
            raise ImportError(f"cannot import '{path}'{reason}")
        obj = getattr(obj, attr)
    return obj


def instantiate(node: Any, /, **overrides: Any) -> Any:
    """Recursively build every ``_target_`` node inside `node`.

    Mistakes in the config are one-line `InstantiationError`s naming the node's path in its
    root config (``model.roi_heads.box_head``). Anything else a target raises is a bug: it
    propagates unchanged, traceback included, with the note ``while building '<path>' (<target>)``.

    Args:
        node: a DictConfig / ListConfig / dict / list, possibly nested, or a plain value.
            Interpolations are resolved against the node's root first.
        **overrides: keyword arguments for the top-level call, replacing or adding to the
            node's own (e.g. ``instantiate(cfg.optimizer, params=groups)``). They are
            passed as given, not instantiated, and the node's own values they replace are
            not built.

    Returns:
        The built object; containers without ``_target_`` come back as plain dicts/lists.

    Raises:
        InstantiationError: a ``_target_`` can't be imported; a node's arguments don't fit
            its target's signature (checked before the call: unknown ones, with the closest
            accepted name, or missing required ones); or the call raised a `UserError` or a
            `ValueError` (constructors reject bad values with ValueError).
    """
    path = ""
    if isinstance(node, (DictConfig, ListConfig)):
        path = _config_path(node)
        node = OmegaConf.to_container(node, resolve=True)
    return _build(node, path=path, overrides=overrides)


def check_targets(node: Any, path: str = "") -> None:
    """Import every ``_target_`` in `node` and check its arguments' names, without calling anything.

    Only unknown arguments are refused: a required one may still come from the caller
    (``instantiate(cfg.optimizer, params=...)``).

    Raises:
        InstantiationError: naming the first bad node's config path and its import error
            or unknown arguments (e.g. ResNet's ``depth`` left after a ``_target_`` swap).
    """
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, Mapping):
        target = node.get(TARGET_KEY)
        if isinstance(target, str):
            try:
                built_by = locate(target)
            except ImportError as exc:
                raise InstantiationError(f"{_join(path, TARGET_KEY)} = '{target}' can't be imported: {exc}") from exc
            names = [k for k in node if k != TARGET_KEY]
            # The usual cause: a `_target_` changed on the command line keeps the old target's arguments.
            hint = f" (on the command line, delete each one with '~{_join(path, 'NAME')}')"
            _check_arguments(built_by, names, f"'{path or '<root>'}' ({target})", require_all=False, hint=hint)
        for key, value in node.items():
            check_targets(value, _join(path, key))
    elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        for i, value in enumerate(node):
            check_targets(value, f"{path}[{i}]")


def _build(node: Any, path: str, overrides: Mapping[str, Any] | None = None) -> Any:
    if isinstance(node, Mapping):
        if TARGET_KEY not in node:
            built = {k: _build(v, _join(path, k)) for k, v in node.items()}
            built.update(overrides or {})
            return built
        target_path = f"{_join(path, TARGET_KEY)}"
        try:
            target = locate(node[TARGET_KEY]) if isinstance(node[TARGET_KEY], str) else node[TARGET_KEY]
        except ImportError as exc:
            raise InstantiationError(f"{target_path} = '{node[TARGET_KEY]}' can't be imported: {exc}") from exc
        # An argument given in `overrides` replaces the node's own, which is not built (the
        # optimizer's `params` node needs the model that the engine passes instead).
        overrides = overrides or {}
        kwargs = {k: _build(v, _join(path, k)) for k, v in node.items() if k != TARGET_KEY and k not in overrides}
        kwargs.update(overrides)
        where = f"building '{path or '<root>'}' ({node[TARGET_KEY]})"
        _check_arguments(target, list(kwargs), where)
        try:
            return target(**kwargs)
        except (UserError, ValueError) as exc:
            raise InstantiationError(f"{where}: {exc}") from exc
        except Exception as exc:
            exc.add_note(f"while {where}")
            raise
    if isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        return [_build(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def _check_arguments(target: Callable, names: Sequence[str], where: str, *, require_all: bool = True,
                     hint: str = "") -> None:
    """Raise InstantiationError if `target` can't take keyword arguments `names`: unknown ones
    (followed by `hint`), and with `require_all` the required ones `names` lacks."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins and C functions have no readable signature
        return
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [_suggest(name, accepted) for name in names if name not in accepted]
    missing = [
        repr(n) for n, p in params.items()
        if require_all and p.default is p.empty and p.kind is not p.VAR_POSITIONAL and n not in names
    ]
    problems = []
    if unknown:
        problems.append(f"unknown argument {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}{hint}")
    if missing:
        problems.append(f"missing required argument {', '.join(missing)}")
    if problems:
        raise InstantiationError(f"{where}: {'; '.join(problems)}")


def _suggest(name: str, accepted: list[str]) -> str:
    close = difflib.get_close_matches(name, accepted, n=1)
    return f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'"


def _config_path(node: DictConfig | ListConfig) -> str:
    """Path of `node` in its root config (``model.roi_heads``), so errors name the full key."""
    # OmegaConf has no public API for this; node._get_full_key(None) drops list brackets.
    parent = node._get_parent()
    return "" if parent is None else parent._get_full_key(node._key())


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
