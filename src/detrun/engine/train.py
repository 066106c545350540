"""The train loop. `run_train(cfg, run_dir)` starts the processes; `train_worker` is each of them.

Per process, top to bottom: seed -> build model, optimizer, lr schedule and loader from the
recipe -> resume -> loop -> final weights, evaluation and report. Per iteration:

    set lr -> grad_accum x (next batch -> forward under autocast -> backward, scaled only for
    fp16) -> average the losses over ranks, stop if one is not finite -> unscale, clip ->
    step -> zero_grad(set_to_none) -> EMA -> hooks (timing, logging, checkpoint, eval, yours)
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detrun.config import instantiate
from detrun.errors import UserError
from detrun.export.compile import TRAINING_KEY, build_model
from detrun.utils import comm
from detrun.utils.events import METRICS_FILE, MetricsWriter, flatten_results
from detrun.utils.precision import autocast_dtype

from .checkpointer import CHECKPOINT_DIR, Checkpointer, LoaderRNG, RNGState, list_checkpoints, save_weights
from .ema import ModelEMA
from .hooks import IterationTimer, PeriodicCheckpoint, PeriodicEval, ProgressLogger, TrainState
from .launch import launch
from .optim import build_optimizer

logger = logging.getLogger(__name__)

FINAL_WEIGHTS = "model_final.pth"
RESULTS_FILE = "results.json"


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss term became NaN or infinite; the message names it, the iteration and the last checkpoint."""


class RunDirError(UserError, FileExistsError):
    """A fresh run asked for in a directory that holds another run's outputs."""


class TrainingInterrupted(UserError, KeyboardInterrupt):
    """Ctrl-C during training; the message says where the last checkpoint is and how to resume.

    Still a KeyboardInterrupt for code that catches those; the command line exits with
    `exit_code`, the shell's code for a run ended by SIGINT.
    """

    exit_code = 130


def run_train(cfg: DictConfig, run_dir: Path) -> None:
    """Train ``cfg.model`` as ``cfg.trainer`` says, writing everything into `run_dir`.

    Writes ``metrics.jsonl`` (and TensorBoard events), ``checkpoints/model_{N:07d}.pth``,
    ``model_final.pth`` (weights only; the EMA weights when EMA is on) and, when the recipe
    has an ``evaluator``, ``results.json`` and the training report.

    Args:
        cfg: a training recipe: ``model``, ``optimizer`` (no ``params``), ``lr_scheduler``,
            ``dataloader.train`` (an infinite iterable of ``list[dict]``), ``trainer`` and
            optionally ``evaluator`` with ``dataloader.test``.
        run_dir: an existing directory (Hydra's run directory under the CLI).
    """
    start = time.perf_counter()
    try:
        speaks_for_job = launch(train_worker, cfg, Path(run_dir))
    except KeyboardInterrupt:
        raise TrainingInterrupted(interrupted_message(Path(run_dir))) from None
    if speaks_for_job:
        print(run_summary(Path(run_dir), time.perf_counter() - start))


def interrupted_message(run_dir: Path) -> str:
    """What to tell a user who pressed Ctrl-C: the newest checkpoint and the command that resumes."""
    saved = list_checkpoints(run_dir / CHECKPOINT_DIR)
    where = f"the last checkpoint is {saved[-1]}" if saved else f"no checkpoint was written yet in {run_dir}"
    return (f"training interrupted (Ctrl-C); {where}. Continue with trainer.resume=true "
            f"hydra.run.dir={run_dir}")


def run_summary(run_dir: Path, seconds: float) -> str:
    """A few closing lines: the AP table from ``results.json`` (if any), wall time, where the files are."""
    lines = [f"Done in {seconds / 60:.1f} min. Run directory: {run_dir}"]
    results_path = run_dir / RESULTS_FILE
    if results_path.is_file():
        from detrun.evaluation.tables import summary_groups

        results = json.loads(results_path.read_text())
        # One block per kind of metrics: COCO AP's six columns, sem_seg's mIoU..., panoptic_seg's PQ...
        for keys, tasks in summary_groups(results):
            width = max(10, *(len(t) + 1 for t in tasks))
            lines.append(f"  {'task':<{width}}" + "".join(f"{k:>7}" for k in keys))
            for task in tasks:
                values = [results[task].get(k) for k in keys]
                lines.append(f"  {task:<{width}}" + "".join(f"{float('nan') if v is None else v:7.1f}" for v in values))
    written = [name for name in (RESULTS_FILE, FINAL_WEIGHTS, "metrics.jsonl", "training_curves.png",
                                 "val_predictions.png", "recipe.yaml") if (run_dir / name).is_file()]
    lines.append(f"  wrote: {', '.join(written)}, checkpoints/")
    return "\n".join(lines)


def train_worker(cfg: DictConfig, run_dir: Path, device: torch.device) -> None:
    """One process of a run: build, resume, train, finish. The process group is set up already."""
    t = cfg.trainer
    amp_dtype = training_autocast_dtype(t.amp, device)
    if int(t.grad_accum) < 1:
        raise UserError(f"trainer.grad_accum={t.grad_accum} must be >= 1")
    # Rank 0 looks, everyone agrees: ranks must not part ways on a shared directory.
    problem = comm.broadcast_object(run_dir_problem(run_dir, t.resume) if comm.is_main_process() else None)
    if problem:
        raise RunDirError(problem)
    seed_all(t.seed)  # identical initial weights on every rank
    model = build_model(cfg, TRAINING_KEY).to(device)  # trainer.compile: backbone and heads compiled
    # Groups from the recipe's optimizer.params node (model= filled in here) or the trainer's
    # weight decays; each starts at lr x its lr_factor, its "initial_lr" (the schedule multiplies
    # this; saved with the optimizer).
    optimizer = build_optimizer(model, cfg.optimizer, t)
    schedule = instantiate(cfg.lr_scheduler)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = ModelEMA(model, decay=t.ema.decay, warmup_iters=t.ema.warmup_iters) if t.ema.enabled else None
    loader = instantiate(cfg.dataloader.train)
    seed_all(t.seed + comm.get_rank())  # from here on each rank draws its own random numbers

    progress = ProgressLogger(t.log_period)
    shared = {"model": model, "optimizer": optimizer, "scaler": scaler, **({"ema": ema} if ema else {}),
              "log_window": progress}
    loader_rng = LoaderRNG()
    per_rank = {"rng": RNGState(), "loader_rng": loader_rng}
    if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict"):
        per_rank["loader"] = loader
    elif comm.is_main_process():
        logger.warning("The train loader has no state_dict(): a resumed run restarts its data order.")
    checkpointer = Checkpointer(run_dir, keep=t.keep_checkpoints, shared=shared, per_rank=per_rank)
    start_iter = checkpointer.resume(t.resume)
    starts = comm.all_gather_object(start_iter)
    if len(set(starts)) > 1:
        raise UserError(f"the ranks resumed from different iterations ({starts}): the run directory "
                        f"{run_dir} must be on a file system every machine sees")

    ddp = model
    if comm.get_world_size() > 1:
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=t.find_unused_parameters)
    final_model = ema.module if ema else model
    evaluate = partial(evaluate_model, cfg, run_dir, final_model) if OmegaConf.select(cfg, "evaluator") else None
    writer = MetricsWriter(run_dir, start_iter=start_iter) if comm.is_main_process() else None
    state = TrainState(cfg=cfg, run_dir=run_dir, model=model, optimizer=optimizer, start_iter=start_iter,
                       max_iter=t.max_iter, iteration=start_iter, writer=writer)
    # Log before checkpointing: a run killed after a checkpoint has logged every step up to it.
    hooks = [IterationTimer(), progress, PeriodicCheckpoint(checkpointer, t.checkpoint_period)]
    if evaluate is not None:
        hooks.append(PeriodicEval(evaluate, t.eval_period))
    hooks += [instantiate(hook) for hook in t.hooks]
    logger.info("Training %s (%.2fM parameters) for %d iterations from %d on %d process(es), device %s, amp %s, "
                "grad_accum %d", type(model).__name__, sum(p.numel() for p in model.parameters()) / 1e6,
                t.max_iter, start_iter, comm.get_world_size(), device, t.amp, t.grad_accum)
    try:
        train_loop(state, ddp=ddp, schedule=schedule, batches=loader_batches(loader, loader_rng), scaler=scaler,
                   ema=ema, amp_dtype=amp_dtype, hooks=hooks, checkpointer=checkpointer)
        if comm.is_main_process():
            save_weights(run_dir / FINAL_WEIGHTS, final_model, state.iteration)
        if evaluate is not None:
            results = evaluate()
            if comm.is_main_process():
                finish_evaluation(results, state, final_model)
    finally:
        if writer is not None:
            writer.close()


def train_loop(state: TrainState, *, ddp: nn.Module, schedule: Callable[[int], float], batches: Iterator[list[dict]],
               scaler: torch.amp.GradScaler, ema: ModelEMA | None, amp_dtype: torch.dtype | None,
               hooks: list, checkpointer: Checkpointer) -> None:
    """Run iterations ``state.start_iter .. state.max_iter - 1``; see the module docstring."""
    t, model, optimizer = state.cfg.trainer, state.model, state.optimizer
    accum = int(t.grad_accum)
    autocast = torch.autocast(next(model.parameters()).device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    model.train()
    for hook in hooks:
        hook.before_train(state)
    try:
        for iteration in range(state.start_iter, state.max_iter):
            lr_factor = schedule(iteration)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lr_factor
            loss_sums, data_time = {}, 0.0
            for micro in range(accum):
                start = time.perf_counter()
                batch = next_batch(batches, iteration)
                data_time += time.perf_counter() - start
                # DDP all-reduces gradients in every backward: skip that until the last micro-batch.
                sync = ddp is model or micro == accum - 1
                with contextlib.nullcontext() if sync else ddp.no_sync():
                    with autocast:
                        loss_dict = ddp(batch)
                    comm.check_same_names(loss_dict)  # before backward: a missing term would desync DDP
                    loss = sum(loss_dict.values())
                    scaler.scale(loss / accum).backward()  # scale() is the identity unless fp16
                for name, value in loss_dict.items():
                    loss_sums[name] = loss_sums.get(name, 0.0) + value.detach().float() / accum
            losses = comm.reduce_mean(loss_sums)  # sync point: one small all_reduce per iteration
            check_finite(losses, iteration + 1, checkpointer)
            scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
            metrics = {}
            if t.clip_grad_norm:
                metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad_norm))
            scaler.step(optimizer)  # with fp16, skipped when a gradient overflowed
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            state.iteration = iteration + 1
            # The optimizer's lr, not a group's: with layer-wise decay groups run at fractions of it.
            state.metrics = {**losses, "total_loss": math.fsum(losses.values()),
                             "lr": optimizer.defaults["lr"] * lr_factor, "data_time": data_time, **metrics}
            for hook in hooks:
                hook.after_step(state)
    finally:
        # Also when training fails, as in Detectron2: hooks let go of what they hold (the progress bar).
        for hook in hooks:
            hook.after_train(state)


def run_dir_problem(run_dir: Path, resume: bool | str | None) -> str | None:
    """Why a run with ``trainer.resume=resume`` must not start in `run_dir`, or None if it may.

    A fresh run would truncate the old run's metrics, mix its checkpoints with the old ones and
    later resume from whichever sorts newest; so it goes on only when it continues that run
    (``resume=true``, or a checkpoint inside `run_dir`) or the directory holds no run yet.
    (Hydra's own files, ``.hydra/``, ``main.log`` and ``recipe.yaml``, don't count.)
    """
    run_dir = Path(run_dir)
    if resume is True or (resume and run_dir.resolve() in Path(str(resume)).expanduser().resolve().parents):
        return None
    found = [CHECKPOINT_DIR] if list_checkpoints(run_dir / CHECKPOINT_DIR) else []
    found += [name for name in (METRICS_FILE, FINAL_WEIGHTS) if (run_dir / name).exists()]
    if not found:
        return None
    return (f"the run directory {run_dir} already holds a run ({', '.join(found)}); continue that run with "
            "trainer.resume=true, or start this one in an empty directory (hydra.run.dir=NEW_DIR)")


def loader_batches(loader, rng: LoaderRNG) -> Iterator[list[dict]]:
    """The batches of `loader`, each produced with the loader's own generators `rng` (see LoaderRNG)."""
    with rng.active():
        batches = iter(loader)
    while True:
        with rng.active():
            try:
                batch = next(batches)
            except StopIteration:
                return
        yield batch  # outside the block: the training step draws from the training's generators


def next_batch(batches: Iterator[list[dict]], iteration: int) -> list[dict]:
    try:
        return next(batches)
    except StopIteration:
        raise UserError(
            f"dataloader.train ran out of batches in iteration {iteration + 1}: the train loader must be "
            "infinite (repeat the data set, as the data package's train loader does)") from None


def check_finite(losses: dict[str, float], iteration: int, checkpointer: Checkpointer) -> None:
    """Raise NonFiniteLossError naming the non-finite loss terms (same on every rank: reduced values)."""
    bad = [name for name, value in losses.items() if not math.isfinite(value)]
    if not bad:
        return
    saved = checkpointer.checkpoints()
    last = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was written yet"
    values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(losses.items()))
    raise NonFiniteLossError(
        f"non-finite loss {', '.join(bad)} in iteration {iteration} ({values}); training stopped and {last}. "
        "Lower optimizer.lr, lengthen the warmup, or set trainer.clip_grad_norm, then resume with trainer.resume=true.")


def training_autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.amp`` (None: off; see `detrun.utils.precision`), refusing
    fp16 where GradScaler can't run."""
    if amp == "fp16" and device.type != "cuda":
        raise UserError("trainer.amp=fp16 needs a GPU (it trains with a CUDA GradScaler); on CPU use trainer.amp=bf16")
    return autocast_dtype(amp, device)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_model(cfg: DictConfig, run_dir: Path, model: nn.Module) -> dict:
    """Score `model` with the recipe's evaluator on ``dataloader.test`` (every rank its shard;
    results on rank 0, ``{}`` elsewhere)."""
    from detrun.evaluation.evaluators import build_evaluator
    from detrun.evaluation.inference import inference_amp, inference_on_dataset

    evaluator = build_evaluator(cfg.evaluator, output_dir=str(run_dir / "inference"))
    return inference_on_dataset(model, instantiate(cfg.dataloader.test), evaluator, amp=inference_amp(cfg))


def finish_evaluation(results: dict, state: TrainState, model: nn.Module) -> None:
    """Rank 0: write results.json and the final metrics, then the training report."""
    from detrun.evaluation.report import write_training_report

    # A metric with no ground truth to score (e.g. APl without large objects) is NaN: write null, valid JSON.
    finite = {task: {k: (v if math.isfinite(v) else None) for k, v in metrics.items()} for task, metrics in results.items()}
    (state.run_dir / RESULTS_FILE).write_text(json.dumps(finite, indent=2))
    state.writer.write(state.iteration, flatten_results(results))
    logger.info("Final evaluation: %s", json.dumps(finite))
    write_training_report(model, state.cfg, state.run_dir)
