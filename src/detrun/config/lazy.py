"""LazyCall: describe a call as an OmegaConf node, build it later with `instantiate`.

A node is a DictConfig ``{"_target_": "dotted.path.to.callable", **kwargs}``. Nodes nest,
hold lists and interpolations, and dump to YAML unchanged, because a target is stored as
its import path, never as the object itself.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from detrun.errors import UserError

TARGET_KEY = "_target_"


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
    """Import ``"package.module.attr.attr"``, trying the longest importable module prefix."""
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
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                reason = f": {error}" if error else ""
                raise ImportError(f"cannot import '{path}'{reason}")
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import '{path}': {error}")


def instantiate(node: Any, /, **overrides: Any) -> Any:
    """Recursively build every ``_target_`` node inside `node`.

    Args:
        node: a DictConfig / ListConfig / dict / list, possibly nested, or a plain value.
            Interpolations are resolved against the node's root first.
        **overrides: keyword arguments for the top-level call, replacing or adding to the
            node's own (e.g. ``instantiate(cfg.optimizer, params=groups)``). They are
            passed as given, not instantiated.

    Returns:
        The built object; containers without ``_target_`` come back as plain dicts/lists.

    Raises:
        InstantiationError: naming the config path (``model.backbone._target_``) of the node
            whose target could not be imported or whose call failed.
    """
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    return _build(node, path="", overrides=overrides)


def check_targets(node: Any, path: str = "") -> None:
    """Import every ``_target_`` in `node` without calling anything.

    Raises:
        InstantiationError: naming the first target's config path and its import error.
    """
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, Mapping):
        target = node.get(TARGET_KEY)
        if isinstance(target, str):
            try:
                locate(target)
            except ImportError as exc:
                raise InstantiationError(f"{_join(path, TARGET_KEY)} = '{target}' can't be imported: {exc}") from exc
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
        kwargs = {k: _build(v, _join(path, k)) for k, v in node.items() if k != TARGET_KEY}
        kwargs.update(overrides or {})
        try:
            return target(**kwargs)
        except InstantiationError:
            raise
        except Exception as exc:
            where = path or "<root>"
            raise InstantiationError(
                f"building '{where}' ({node[TARGET_KEY]}) failed: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        return [_build(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
