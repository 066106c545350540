"""Recipes as OmegaConf trees: LazyCall, instantiate, find/load/save/compose.

Knows nothing about models or training; Hydra stays at the command-line edge
(`detrun.cli`), so this package works inside a user's own Hydra application.
"""
from .compose import OverrideError, apply_overrides, compose
from .lazy import InstantiationError, L, LazyCall, instantiate, locate
from .recipes import DEFAULT_RECIPE, RecipeError, get_recipe, list_recipes, load, save

__all__ = [
    "DEFAULT_RECIPE",
    "InstantiationError",
    "L",
    "LazyCall",
    "OverrideError",
    "RecipeError",
    "apply_overrides",
    "compose",
    "get_recipe",
    "instantiate",
    "list_recipes",
    "load",
    "locate",
    "save",
]
