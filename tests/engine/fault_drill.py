"""Fault drill: kill a training process at random moments after a checkpoint, resume, compare.

    python tests/engine/fault_drill.py --tries 10 [--workers 0|2] [--seed 0] [--dir DIR]

Trains the shapes Mask R-CNN at a tiny size (`tiny_shapes_recipe`) with the real train loader.
First one uninterrupted run. Then, per try, a run in a child process that gets SIGKILLed once
its k-th checkpoint (k random) is being written or exists: on even tries the moment the
checkpoint's temporary file appears (a kill during the write), on odd tries a random
0-0.5 s after the checkpoint is complete. A second child resumes the run
(``trainer.resume=true``) to the end; its final weights must equal the uninterrupted run's
bit for bit. Prints one line per try; exits 1 unless every try is bit-exact.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

MAX_ITER = 6
CHECKPOINT_PERIOD = 2  # checkpoints 2, 4, 6: the kill lands after one of them
KILL_POLL_S = 0.001  # a small checkpoint takes milliseconds to write: look often to catch it mid-write


def tiny_shapes_recipe(root: Path, *, num_workers: int, max_iter: int = MAX_ITER,
                       checkpoint_period: int = CHECKPOINT_PERIOD) -> DictConfig:
    """``shapes_mask_rcnn`` shrunk to train in about a second per step on one CPU thread.

    8 images of 64 px (generated under `root`), batch 2, a 16-wide ResNet-18 with a 32-channel
    FPN and small heads; no evaluator. The loader is the recipe's own (shuffling, flips,
    `num_workers` worker processes). Checkpoints are all kept.
    """
    from detrun.config import get_recipe

    cfg = get_recipe("shapes_mask_rcnn")
    train = cfg.dataloader.train
    train.dataset.update(num_images=8, image_size=64, min_size=12, max_size=28, max_objects=3, root=str(root))
    train.num_workers = num_workers
    train.total_batch_size = 2
    model = cfg.model
    model.backbone.bottom_up.width = 16
    model.backbone.out_channels = 32
    model.proposal_generator.update(batch_size_per_image=32, pre_nms_topk=[200, 100], post_nms_topk=[50, 25])
    model.roi_heads.batch_size_per_image = 32
    model.roi_heads.box_head.fc_dims = [64, 64]
    model.roi_heads.branches.mask.head.conv_dims = [32, 32]
    del cfg.evaluator, cfg.dataloader.test
    cfg.trainer.update(max_iter=max_iter, checkpoint_period=checkpoint_period, log_period=1, keep_checkpoints=0)
    return cfg


def train_child(run_dir: Path, root: Path, num_workers: int, resume: bool) -> None:
    """The child's work: train (or resume) the tiny recipe in `run_dir` on one thread."""
    import torch

    from detrun.engine import run_train

    torch.set_num_threads(1)  # the same reductions in every run: bit-exact comparisons need it
    cfg = tiny_shapes_recipe(root, num_workers=num_workers)
    cfg.trainer.resume = resume
    run_dir.mkdir(parents=True, exist_ok=True)
    run_train(cfg, run_dir)


def _child(run_dir: Path, root: Path, num_workers: int, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", str(run_dir), "--dir", str(root), "--workers", str(num_workers)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS")}
    return subprocess.Popen(cmd + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"training child failed (exit {proc.returncode}):\n{err[-3000:]}")


def _kill_after_checkpoint(proc: subprocess.Popen, checkpoints: Path, k: int, mid_write: bool,
                           rng: random.Random) -> str:
    """SIGKILL `proc` at the k-th checkpoint (during its write, or a moment after it); say when."""
    name = f"model_{k * CHECKPOINT_PERIOD:07d}.pth"
    while proc.poll() is None:
        entries = os.listdir(checkpoints) if checkpoints.is_dir() else []
        writing = any(e.startswith(f".{name}.tmp-") for e in entries)
        if (mid_write and writing) or name in entries:
            if not mid_write:
                time.sleep(rng.uniform(0.0, 0.5))
            proc.kill()
            proc.wait()
            left = [e for e in os.listdir(checkpoints) if ".tmp-" in e]
            return f"killed while writing {name}" if left else f"killed after {name}"
        time.sleep(KILL_POLL_S)
    return "finished before the kill"


def _same_weights(a: Path, b: Path) -> tuple[bool, float]:
    """Whether two weight files are bit-identical, and the largest absolute difference."""
    import torch

    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    worst = max(float((wa[k].double() - wb[k].double()).abs().max()) if wa[k].numel() else 0.0 for k in wa)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), worst


def drill(directory: Path, *, tries: int, num_workers: int = 0, seed: int = 0) -> list[str]:
    """Run the drill in `directory`; return one line per try, each starting "exact" or "DIFFERENT"."""
    rng = random.Random(seed)
    reference = directory / "uninterrupted"
    _finish(_child(reference, directory, num_workers))
    lines = []
    for i in range(tries):
        run_dir = directory / f"try{i}"
        k = rng.randint(1, MAX_ITER // CHECKPOINT_PERIOD)
        when = _kill_after_checkpoint(_child(run_dir, directory, num_workers), run_dir / "checkpoints", k,
                                      mid_write=i % 2 == 0, rng=rng)
        _finish(_child(run_dir, directory, num_workers, resume=True))
        exact, worst = _same_weights(reference / "model_final.pth", run_dir / "model_final.pth")
        lines.append(f"{'exact' if exact else 'DIFFERENT'}: try {i}, {when}, max |diff| {worst:.3g}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0, help="train loader worker processes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        train_child(args.child, args.dir, args.workers, args.resume)
        return
    with tempfile.TemporaryDirectory(prefix="detrun-drill-") as tmp:
        lines = drill(args.dir or Path(tmp), tries=args.tries, num_workers=args.workers, seed=args.seed)
    print("\n".join(lines))
    exact = sum(line.startswith("exact") for line in lines)
    print(f"{exact} of {len(lines)} tries bit-exact (workers={args.workers})")
    sys.exit(0 if exact == len(lines) else 1)


if __name__ == "__main__":
    main()
