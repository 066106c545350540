"""Training throughput of a recipe: detrun's train loop against a bare loop over the same pieces.

The bare loop is what the engine must not be much slower than: the recipe's model, optimizer
(with the engine's parameter groups), lr schedule and train loader, and per iteration only
``set lr -> next(batch) -> forward (under autocast) -> backward -> step -> zero_grad``. It
follows the same training trajectory as the engine, which matters: a detector's cost depends
on its weights (how many proposals survive, how many ROIs are positive). The engine run is
`run_train` itself (loss reduction and finiteness check, hooks, progress bar, metrics.jsonl),
without checkpoints and without the final evaluation. Both run in this process, one after the
other, for each precision: off and bf16 on the CPU; with a GPU also ``trainer.gpus=1`` with
off, bf16 and fp16.

After `--warmup` iterations, `--runs` windows of `--iters` iterations each are timed; the table
gives the median seconds per iteration (wall clock and CPU time of this process, the stable
number on a shared machine, best with ``--threads 1``: idle threads of a busy machine spin and
count as CPU time), images/s = total batch / s per iteration, and the ratios engine / bare.

    python benchmarks/train.py --recipe shapes_mask_rcnn --runs 5 --iters 2 --warmup 3 [--threads 1] [override ...]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from detrun.config import L, compose, instantiate
from detrun.engine.hooks import Hook
from detrun.engine.optim import param_groups
from detrun.engine.train import run_train, seed_all, training_autocast_dtype

# (wall, cpu) time stamps after each engine step, filled by StepStamps (the run is in-process).
STAMPS: list[tuple[float, float]] = []


def _stamp(device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()  # time the GPU's work, not how fast kernels were queued
    return time.perf_counter(), time.process_time()


class StepStamps(Hook):
    def before_train(self, state) -> None:
        STAMPS.append(_stamp(next(state.model.parameters()).device))

    def after_step(self, state) -> None:
        STAMPS.append(_stamp(next(state.model.parameters()).device))


def engine_stamps(cfg) -> list[tuple[float, float]]:
    cfg = cfg.copy()
    cfg.trainer.checkpoint_period = 0
    cfg.trainer.eval_period = 0
    cfg.trainer.hooks = [L(StepStamps)()]
    cfg.evaluator = None  # no final evaluation
    STAMPS.clear()
    with tempfile.TemporaryDirectory() as run_dir:
        run_train(cfg, Path(run_dir))
    return list(STAMPS)


def bare_stamps(cfg, total_iters: int) -> list[tuple[float, float]]:
    device = torch.device("cuda", 0) if cfg.trainer.gpus else torch.device("cpu")
    t = cfg.trainer
    seed_all(t.seed)
    model = instantiate(cfg.model).to(device).train()
    groups = param_groups(model, weight_decay_norm=t.weight_decay_norm, weight_decay_bias=t.weight_decay_bias)
    optimizer = instantiate(cfg.optimizer, params=groups)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    schedule = instantiate(cfg.lr_scheduler)
    batches = iter(instantiate(cfg.dataloader.train))
    dtype = training_autocast_dtype(t.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    seed_all(t.seed)  # as the engine does after building: the same proposal sampling follows
    stamps = [_stamp(device)]
    for iteration in range(total_iters):
        for group, base_lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base_lr * schedule(iteration)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            losses = model(next(batches))
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(_stamp(device))
    return stamps


def window_medians(stamps, warmup: int, runs: int, iters: int) -> tuple[float, float]:
    """Median over windows of (wall, cpu) seconds per iteration, skipping `warmup` iterations."""
    walls, cpus = [], []
    for r in range(runs):
        (w0, c0), (w1, c1) = stamps[warmup + r * iters], stamps[warmup + (r + 1) * iters]
        walls.append((w1 - w0) / iters)
        cpus.append((c1 - c0) / iters)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="shapes_mask_rcnn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2, help="iterations per timed window")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 gives stable CPU times on a shared machine")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. trainer.grad_accum=2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = [("cpu", "off"), ("cpu", "bf16")]
    if torch.cuda.is_available():
        settings += [("gpus=1", amp) for amp in ("off", "bf16", "fp16")]
    total_iters = args.warmup + args.runs * args.iters
    rows = []
    for device, amp in settings:
        gpus = 1 if device == "gpus=1" else 0
        # max_iter also sets the lr schedule, so both loops follow the same one.
        cfg = compose(args.recipe, [f"trainer.amp={amp}", f"trainer.gpus={gpus}", f"trainer.max_iter={total_iters}",
                                    *args.overrides])
        images = cfg.dataloader.train.total_batch_size
        engine = window_medians(engine_stamps(cfg), args.warmup, args.runs, args.iters)
        bare = window_medians(bare_stamps(cfg, total_iters), args.warmup, args.runs, args.iters)
        rows.append((device, amp, engine, bare, images))
        print(f"done: {device} amp={amp}", flush=True)

    print(f"\nrecipe {args.recipe}, total batch {rows[0][4]}, median of {args.runs} windows x {args.iters} iterations "
          f"after {args.warmup} warm-up, torch threads {torch.get_num_threads()}\n")
    print("| device | amp | engine s/iter | engine img/s | bare s/iter | engine / bare | engine CPU s/iter "
          "| bare CPU s/iter | engine / bare (CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device, amp, (ew, ec), (bw, bc), images in rows:
        print(f"| {device} | {amp} | {ew:.3f} | {images / ew:.2f} | {bw:.3f} | {ew / bw:.2f} | {ec:.3f} | {bc:.3f} "
              f"| {ec / bc:.2f} |")


if __name__ == "__main__":
    main()
