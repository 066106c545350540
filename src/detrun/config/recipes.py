"""Find, load and save recipes.

A recipe is a Python file whose top-level DictConfig values (``model``, ``dataloader``,
``optimizer``, ``lr_scheduler``, ``trainer``, ``evaluator``, ...) form one config tree.
Built-in recipes live in the ``detrun.recipes`` package; any other ``.py`` path works too.
"""
from __future__ import annotations

import builtins
import difflib
import importlib.util
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

import detrun.recipes
from detrun.errors import UserError

RECIPES_DIR = Path(detrun.recipes.__file__).parent
RECIPES_PACKAGE = "detrun.recipes"
DEFAULT_RECIPE = "shapes_mask_rcnn"


class RecipeError(UserError, ValueError):
    """A recipe name, path or file is wrong; the message says which and what to do."""


def list_recipes() -> list[str]:
    """Names of the built-in recipes (files directly in ``recipes/``), sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.py") if not p.name.startswith("_"))


def is_recipe_path(name_or_path: str) -> bool:
    """True if the argument names a file rather than a built-in recipe."""
    return name_or_path.endswith(".py") or "/" in name_or_path or "\\" in name_or_path


def recipe_file(name_or_path: str) -> Path:
    """Resolve a recipe name or path to its file, or raise a RecipeError listing the choices."""
    if is_recipe_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise RecipeError(f"recipe file '{path}' does not exist (give a path to a .py recipe file)")
        return path.resolve()
    path = RECIPES_DIR / f"{name_or_path}.py"
    if name_or_path.startswith("_") or not path.is_file():
        names = list_recipes()
        close = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.4)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"unknown recipe '{name_or_path}'.{hint} Available recipes: {', '.join(names)}. "
            "A path to your own recipe file works too (recipe=path/to/my_recipe.py)."
        )
    return path


def get_recipe(name_or_path: str) -> DictConfig:
    """Load a recipe by built-in name (``"mask_rcnn_R50"``) or by file path.

    Returns a fresh DictConfig each call: the recipe file and every ``detrun.recipes``
    module it imports are executed anew, so mutating one result never leaks into the next.
    Within one load too, every import of a ``detrun.recipes`` module runs that module afresh:
    a recipe that imports a node and edits it in place (``model.roi_heads.num_classes = 3``)
    edits its own copy, whatever else imports the same module, in whatever order.
    """
    path = recipe_file(name_or_path)
    saved = _pop_recipe_modules()
    try:
        with _fresh_recipe_imports():
            module = _exec_recipe(path)
        cfg = {}
        for key, value in vars(module).items():
            if not key.startswith("_") and isinstance(value, (DictConfig, ListConfig)):
                cfg[key] = value
        if not cfg:
            raise RecipeError(f"recipe '{path}' defines no top-level config nodes (model, dataloader, ...)")
        return OmegaConf.create(cfg)
    finally:
        # Forget the freshly imported copies and put back whatever was imported before.
        _pop_recipe_modules()
        sys.modules.update(saved)


def _pop_recipe_modules() -> dict:
    names = [n for n in sys.modules if n.startswith(RECIPES_PACKAGE + ".")]
    return {n: sys.modules.pop(n) for n in names}


@contextmanager
def _fresh_recipe_imports() -> Iterator[None]:
    """While active, importing a ``detrun.recipes`` module (``from .common.models.x import model``)
    executes it again instead of reusing the module another import already ran."""
    original_import = builtins.__import__

    def fresh_import(name, globals=None, locals=None, fromlist=(), level=0):
        package = (globals or {}).get("__package__") or ""
        absolute = importlib.util.resolve_name("." * level + name, package) if level else name
        if absolute.startswith(RECIPES_PACKAGE + "."):
            sys.modules.pop(absolute, None)
        if absolute == RECIPES_PACKAGE or absolute.startswith(RECIPES_PACKAGE + "."):
            for item in fromlist or ():
                sys.modules.pop(f"{absolute}.{item}", None)  # `from .common.models import mask_rcnn_fpn`
        return original_import(name, globals, locals, fromlist, level)

    builtins.__import__ = fresh_import
    try:
        yield
    finally:
        builtins.__import__ = original_import


def _exec_recipe(path: Path):
    try:
        package = RECIPES_PACKAGE if path.parent == RECIPES_DIR else None
        module_name = f"{package}.{path.stem}" if package else f"_detrun_user_recipe_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            if package is None:
                sys.modules.pop(module_name, None)
        return module
    except RecipeError:
        raise
    except Exception as exc:
        raise RecipeError(f"recipe file '{path}' failed to load: {type(exc).__name__}: {exc}") from exc


def save(cfg: DictConfig, path: str | Path) -> None:
    """Write `cfg` to a YAML file (interpolations kept as written)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(OmegaConf.to_yaml(cfg))


def load(path: str | Path) -> DictConfig:
    """Read a YAML file written by `save` back into a DictConfig."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"config file '{path}' does not exist")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"config file '{path}' does not hold a mapping at its top level")
    return cfg
