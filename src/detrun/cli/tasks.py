"""What ``task=NAME`` runs: one library function each, ``fn(cfg, run_dir)``.

Imported lazily, so ``python -m detrun --help`` or a typo stays fast and a task's
heavy imports happen only when it runs.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from detrun.config.lazy import locate

TASKS = {
    "train": "detrun.engine.train.run_train",
    "eval": "detrun.evaluation.tasks.run_eval",
    "predict": "detrun.evaluation.tasks.run_predict",
    "show_data": "detrun.evaluation.tasks.run_show_data",
    "check_data": "detrun.data.check.run_check_data",
    "doctor": "detrun.ops.doctor.run_doctor",
    "export": "detrun.export.task.run_export",
    "print_config": "detrun.cli.tasks.print_config",
}


def print_config(cfg: DictConfig, run_dir: Path) -> None:
    """Print the resolved recipe (also saved as ``run_dir/recipe.yaml``); handy inside sweeps."""
    print(OmegaConf.to_yaml(cfg, resolve=True), end="")


def run_task(cfg: DictConfig, run_dir: Path) -> None:
    """Run ``cfg.task`` with the composed recipe `cfg` in `run_dir` (which exists)."""
    locate(TASKS[cfg.task])(cfg, run_dir)
