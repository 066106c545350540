"""Find, load and save recipes.

A recipe is a Python file whose top-level DictConfig values (``model``, ``dataloader``,
``optimizer``, ``lr_scheduler``, ``trainer``, ``evaluator``, ...) form one config tree.
Built-in recipes live in the ``detrun.recipes`` package; any other ``.py`` path works too, and
so does a YAML file written by `save` (a run's ``recipe.yaml``).

A user recipe file is loaded as a module named after its path (`user_module_name`) and kept in
``sys.modules``, so a class it defines can be a ``_target_``: `LazyCall` stores such a target as
``/abs/path/recipe.py:ClassName``, which `detrun.config.locate` finds in any process.
"""
from __future__ import annotations

import builtins
import difflib
import hashlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from omegaconf import DictConfig, ListConfig, OmegaConf

import detrun.recipes
from detrun.errors import UserError

RECIPES_DIR = Path(detrun.recipes.__file__).parent
RECIPES_PACKAGE = "detrun.recipes"
DEFAULT_RECIPE = "shapes_mask_rcnn"
YAML_SUFFIXES = (".yaml", ".yml")
USER_MODULE_PREFIX = "_detrun_recipe_"
# Command-line short names: ``group=NAME`` calls ``fn(cfg, NAME)``, which edits the recipe in place.
SHORT_NAME_GROUPS = {"model/backbone": "detrun.recipes.common.models.backbones.choose_backbone"}
# The modules of those functions hold the registries (`BACKBONES`). They are imported once and
# shared by every recipe load, so a recipe that adds a name (``BACKBONES["tiny"] = L(MyBackbone)()``)
# adds it where ``model/backbone=tiny`` looks it up; every other ``detrun.recipes`` module runs afresh.
REGISTRY_MODULES = frozenset(fn.rpartition(".")[0] for fn in SHORT_NAME_GROUPS.values())

# Data set names each recipe file registered on its last load (resolved path -> names).
_registered_by: dict[Path, set[str]] = {}


class RecipeError(UserError, ValueError):
    """A recipe name, path or file is wrong; the message says which and what to do."""


def list_recipes() -> list[str]:
    """Names of the built-in recipes (files directly in ``recipes/``), sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.py") if not p.name.startswith("_"))


def is_recipe_path(name_or_path: str) -> bool:
    """True if the argument names a file rather than a built-in recipe."""
    return name_or_path.endswith((".py", *YAML_SUFFIXES)) or "/" in name_or_path or "\\" in name_or_path


def recipe_file(name_or_path: str) -> Path:
    """Resolve a recipe name or path to its file, or raise a RecipeError listing the choices."""
    if is_recipe_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise RecipeError(f"recipe file '{path}' does not exist (give a path to a .py recipe file "
                              "or to a run's saved recipe.yaml)")
        if path.suffix not in (".py", *YAML_SUFFIXES):
            raise RecipeError(f"recipe file '{path}' is neither a .py recipe nor a .yaml saved by detrun")
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
    """Load a recipe by built-in name (``"mask_rcnn_R50"``), by file path, or from a saved ``.yaml``.

    Returns a fresh DictConfig each call: the recipe file and every ``detrun.recipes``
    module it imports are executed anew, so mutating one result never leaks into the next.
    Within one load too, every import of a ``detrun.recipes`` module runs that module afresh:
    a recipe that imports a node and edits it in place (``model.roi_heads.num_classes = 3``)
    edits its own copy, whatever else imports the same module, in whatever order. The
    short-name registries (`REGISTRY_MODULES`) are the exception: they are shared.
    Data sets the file registered on its previous load are unregistered before it runs
    again, so loading a recipe that calls ``register_coco_instances`` twice works.
    """
    path = recipe_file(name_or_path)
    if path.suffix in YAML_SUFFIXES:
        return load(path)
    module = _load_recipe_module(path)
    cfg = {}
    for key, value in vars(module).items():
        if not key.startswith("_") and isinstance(value, (DictConfig, ListConfig)):
            cfg[key] = value
    if not cfg:
        raise RecipeError(f"recipe '{path}' defines no top-level config nodes (model, dataloader, ...)")
    return OmegaConf.create(cfg)


def user_module_name(path: Path) -> str:
    """Module name of the user recipe file at resolved `path`: the same for the same path in every process."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)  # a '.' or '-' in the file name would break the dotted name
    return f"{USER_MODULE_PREFIX}{stem}_{digest}"


def recipe_module(path: str | Path) -> ModuleType:
    """The module of the recipe file `path` as last loaded in this process, loading it if it wasn't.

    This is how a ``_target_`` such as ``/abs/path/my_recipe.py:MyBackbone`` finds the class.
    """
    path = recipe_file(str(path))
    loaded = sys.modules.get(user_module_name(path))
    return loaded if loaded is not None else _load_recipe_module(path)


def _load_recipe_module(path: Path) -> ModuleType:
    """Execute the ``.py`` recipe at resolved `path` with fresh ``detrun.recipes`` imports."""
    saved = _pop_recipe_modules()
    try:
        with _own_registrations(path), _fresh_recipe_imports():
            return _exec_recipe(path)
    finally:
        # Forget the freshly imported copies and put back whatever was imported before.
        _pop_recipe_modules()
        sys.modules.update(saved)


def _is_fresh(name: str) -> bool:
    """True for the ``detrun.recipes`` modules that run afresh on every recipe load."""
    return name.startswith(RECIPES_PACKAGE + ".") and name not in REGISTRY_MODULES


def _pop_recipe_modules() -> dict:
    names = [n for n in sys.modules if _is_fresh(n)]
    return {n: sys.modules.pop(n) for n in names}


@contextmanager
def _fresh_recipe_imports() -> Iterator[None]:
    """While active, importing a ``detrun.recipes`` module (``from .common.models.x import model``)
    executes it again instead of reusing the module another import already ran."""
    original_import = builtins.__import__

    def fresh_import(name, globals=None, locals=None, fromlist=(), level=0):
        package = (globals or {}).get("__package__") or ""
        absolute = importlib.util.resolve_name("." * level + name, package) if level else name
        if _is_fresh(absolute):
            sys.modules.pop(absolute, None)
        if absolute == RECIPES_PACKAGE or absolute.startswith(RECIPES_PACKAGE + "."):
            for item in fromlist or ():
                if _is_fresh(f"{absolute}.{item}"):
                    sys.modules.pop(f"{absolute}.{item}", None)  # `from .common.models import mask_rcnn_fpn`
        return original_import(name, globals, locals, fromlist, level)

    builtins.__import__ = fresh_import
    try:
        yield
    finally:
        builtins.__import__ = original_import


@contextmanager
def _own_registrations(path: Path) -> Iterator[None]:
    """Unregister the data sets `path` registered on its previous load, then record what it registers now.

    Every load executes the recipe file again; without this its own ``register_coco_instances(...)``
    would collide with the previous load's.
    """
    from detrun.data.catalog import DatasetCatalog, MetadataCatalog  # data sets exist only where data is used

    for name in _registered_by.pop(path, ()):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    before = set(DatasetCatalog.list())
    try:
        yield
    finally:
        _registered_by[path] = set(DatasetCatalog.list()) - before


def _exec_recipe(path: Path) -> ModuleType:
    try:
        package = RECIPES_PACKAGE if path.parent == RECIPES_DIR else None
        module_name = f"{package}.{path.stem}" if package else user_module_name(path)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
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
    """Read a YAML file written by `save` (or a run's ``recipe.yaml``) back into a DictConfig."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"config file '{path}' does not exist")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"config file '{path}' does not hold a mapping at its top level")
    return cfg
