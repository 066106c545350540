"""``python -m detrun``: the Hydra application.

Registers the chosen recipes in Hydra's ConfigStore (group ``recipe``, global package),
checks override keys up front so a typo gets a one-line answer, then lets Hydra compose,
sweep (``-m``) and create run directories. The work itself is a library function per task.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from detrun.config.compose import (
    RECIPE_GROUP,
    TASK_KEYS,
    apply_short_names,
    base_config,
    check_interpolations,
    check_overrides,
    is_group_override,
    parse_overrides,
)
from detrun.config.lazy import check_targets
from detrun.config.recipes import DEFAULT_RECIPE, is_recipe_path, list_recipes, recipe_file
from detrun.errors import StorageError, UserError, WorkerError, user_error
from detrun.utils.precision import AMP_CHOICES

from .tasks import TASKS, run_task

APP_CONFIG = "detrun_app"
# How long a rank that leaves the report of a mistake to another rank waits before exiting.
QUIET_EXIT_S = 3.0
# Hydra flags that take a value in the next argument.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun"}


def _split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split `argv` into Hydra flags (with their values) and override strings."""
    flags, overrides, takes_value = [], [], False
    for arg in argv:
        if takes_value or arg.startswith("-"):
            flags.append(arg)
            takes_value = arg in _FLAGS_WITH_VALUE
        else:
            overrides.append(arg)
    return flags, overrides


def _store_name(choice: str) -> str:
    """ConfigStore option name of a recipe: its own name, or a stable id for a file path."""
    if not is_recipe_path(choice):
        return choice
    digest = hashlib.sha1(str(Path(choice).resolve()).encode()).hexdigest()[:10]
    return f"file_{Path(choice).stem}_{digest}"


def _help_template(recipes: list[str]) -> str:
    keys = "\n".join(
        f"  {k}"
        for k in (
            "task=train|eval|predict|check_data|show_data|doctor|export",
            "trainer.max_iter=N  trainer.gpus=N  trainer.num_processes=N",
            f"trainer.amp={'|'.join(AMP_CHOICES)} (training)  trainer.inference_amp=the same (eval, predict; default: trainer.amp)",
            "trainer.resume=true  optimizer.lr=X  model.weights=PATH",
            "dataset=NAME (check_data/show_data)  input=PATH output=DIR (predict)  predictions=JSON (eval)",
            "format=onnx|torch_export output=FILE (export)",
            "hydra.run.dir=DIR  (where the run writes; default outputs/DATE/TIME)",
        )
    )
    return (
        "detrun: train and evaluate detection models from Python recipes.\n\n"
        "Usage: python -m detrun [recipe=NAME|PATH.py] [key=value ...] [+new.key=value] [-m sweep]\n\n"
        f"Recipes (default {DEFAULT_RECIPE}):\n  " + "\n  ".join(recipes) + "\n\n"
        f"Common keys:\n{keys}\n\n"
        "Print a resolved recipe: python -m detrun recipe=NAME --cfg job\n"
        "Sweep: python -m detrun -m optimizer.lr=0.01,0.02 trainer.max_iter=100,200\n"
        "Hydra's own options: --hydra-help\n"
    )


def prepare(argv: Sequence[str]) -> list[str]:
    """Check `argv`, register the recipes it selects, and return argv rewritten for Hydra.

    Raises:
        UserError: unknown recipe or task, an override of a key the recipe doesn't have, or a
            value of the wrong type for a number.
    """
    from hydra.core.config_store import ConfigStore

    flags, overrides = _split_argv(argv)
    parsed = parse_overrides(overrides)
    choices = [DEFAULT_RECIPE]
    for i, override in enumerate(parsed):
        if override.key_or_group == RECIPE_GROUP:
            choices = [str(v) for v in override.sweep_iterator()] if override.is_sweep_override() else [str(override.value())]
            overrides[i] = f"{RECIPE_GROUP}=" + ",".join(_store_name(c) for c in choices)
        elif is_group_override(override):
            overrides[i] = None  # a short name: applied to the stored recipe below, unknown to Hydra
        if override.key_or_group == "task":
            tasks = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
            for task in tasks:
                if task not in TASKS:
                    raise UserError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")

    store = ConfigStore.instance()
    for choice in choices:
        recipe_file(choice)  # unknown names fail here, listing the available ones
        cfg = apply_short_names(base_config(choice), parsed)
        check_overrides(cfg, parsed)
        store.store(group=RECIPE_GROUP, name=_store_name(choice), node=cfg, package="_global_")
    app = {
        "defaults": [{RECIPE_GROUP: DEFAULT_RECIPE}, "_self_"],
        **TASK_KEYS,
        "hydra": {
            "help": {"app_name": "detrun", "template": _help_template(list_recipes())},
            "job": {"chdir": False},
        },
    }
    store.store(name=APP_CONFIG, node=app)
    # Hydra's argparse wants every override after the flags.
    return [*flags, *(o for o in overrides if o is not None)]


def _task_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_interpolations(cfg)  # Hydra has applied the overrides: `~key` may have removed what one reads
        (run_dir / "recipe.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        check_targets(cfg)
        run_task(cfg, run_dir)
    except Exception as exc:
        mistake = user_error(exc)  # also a full or read-only disk
        if mistake is None:
            raise
        _fail(mistake)


def check_output_dir(argv: Sequence[str]) -> None:
    """Refuse, before Hydra writes there, an output folder that can't be written.

    Hydra writes ``.hydra/`` and ``main.log`` into the run (or sweep) directory before any task
    starts, and a failure there is a traceback. The directory's name may hold interpolations
    (``outputs/${now:...}``): the fixed part before them is checked, up to its nearest existing
    folder. (A disk that fills up later is reported where it happens, see `detrun.errors`.)
    """
    flags, overrides = _split_argv(argv)
    if {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i"} & set(flags):
        return  # nothing is written
    key = "hydra.sweep.dir" if {"-m", "--multirun"} & set(flags) else "hydra.run.dir"
    given = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")]
    value = given[-1] if given else ("multirun/" if key == "hydra.sweep.dir" else "outputs/")
    fixed = Path(value.split("${")[0] or ".").expanduser().absolute()
    existing = next(p for p in (fixed, *fixed.parents) if p.exists())
    if existing.is_dir() and not os.access(existing, os.W_OK):
        raise StorageError(f"can't write into {existing} ({key}={value}): the folder is read-only for this user; "
                           f"make it writable, or write elsewhere ({key}=DIR)")


def _fail(exc: UserError) -> None:
    """Print `exc` as one line and exit with its code, once per job (see `reports`)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    if reports(exc):
        print(f"error: {exc}", file=sys.stderr)
    else:
        # torchrun stops the other ranks as soon as one exits: let the reporting rank go first.
        time.sleep(QUIET_EXIT_S)
    sys.exit(exc.exit_code)  # 2 for a mistake; e.g. 130 for a run stopped with Ctrl-C


def reports(exc: UserError) -> bool:
    """Whether this process prints `exc`; under torchrun or srun every rank runs the command line.

    A rank's own failure (`WorkerError`) is printed unless another rank reports the same
    message. Any other mistake comes before the ranks meet, from the same command line,
    recipe and machine, so the same in all ranks of a machine: its first rank prints it.
    """
    if isinstance(exc, WorkerError):
        return not exc.quiet
    if not {"LOCAL_RANK", "SLURM_STEP_NUM_TASKS"} & os.environ.keys():
        return True  # not one rank of a job: skip importing torch
    from detrun.engine.launch import job_rendezvous

    rendezvous = job_rendezvous()
    return rendezvous is None or rendezvous.local_rank == 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m detrun``; `argv` defaults to ``sys.argv[1:]``."""
    import hydra

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        hydra_argv = prepare(argv)
        check_output_dir(hydra_argv)
    except UserError as exc:
        _fail(exc)
    sys.argv = [sys.argv[0], *hydra_argv]
    hydra.main(version_base="1.3", config_path=None, config_name=APP_CONFIG)(_task_main)()
