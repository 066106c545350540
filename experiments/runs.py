"""Reading a training run directory (what `python -m detrun` writes): its overrides and results.

Shared by the scripts in this folder; nothing in `src/` imports it.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from omegaconf import DictConfig

from detrun.config import DEFAULT_RECIPE, load
from detrun.engine.train import RESULTS_FILE


def overrides(run_dir: Path) -> list[str]:
    """The command-line overrides of the run (Hydra's ``.hydra/overrides.yaml``; [] when absent)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return (yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def recipe_name(run_dir: Path) -> str:
    """The recipe the run trained: its ``recipe=`` override, else the CLI's default recipe."""
    chosen = [o.split("=", 1)[1] for o in overrides(run_dir) if o.startswith("recipe=")]
    return chosen[-1] if chosen else DEFAULT_RECIPE


def recipe_overrides(run_dir: Path) -> list[str]:
    """The overrides that change the recipe's values (without ``recipe=`` and Hydra's own ``hydra.*``)."""
    return [o for o in overrides(run_dir) if not o.startswith(("hydra.", "recipe="))]


def read_results(run_dir: Path) -> dict[str, dict[str, float | None]]:
    """The run's ``results.json``: ``{task: {metric: value in percent, None where undefined}}``."""
    return json.loads((Path(run_dir) / RESULTS_FILE).read_text())


def recipe(run_dir: Path) -> DictConfig:
    """The run's resolved recipe, as the command line saved it (``recipe.yaml``)."""
    return load(Path(run_dir) / "recipe.yaml")
