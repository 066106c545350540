"""A tiny detector-shaped model, loader, evaluator and hooks, so the engine is tested on its own.

The model follows the model contract: ``forward(list[dict])`` returns ``{"loss_cls", "loss_box"}``
in training, and the box term stays in the graph, zero-weighted, for images without ground truth.
Sample i of the data set has no boxes when ``i % 4 >= 2``, so with ``shuffle=False``, a total
batch of 4 and 2 ranks, rank 1 never sees a box.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from detrun.config import L
from detrun.engine.hooks import Hook, TrainState
from detrun.errors import UserError
from detrun.utils import comm

# Variables through which torchrun and SLURM tell a process it is one rank of a job. A test
# run inside such a job must not have its own runs join that job.
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS")
NUM_CLASSES = 3
IMAGE_SIZE = 8


def make_sample(index: int) -> dict:
    """Sample `index`: a noisy uint8 image whose channel `label` is brighter, a label, 0 or 1 boxes."""
    g = torch.Generator().manual_seed(index)
    label = index % NUM_CLASSES
    image = torch.randint(0, 100, (3, IMAGE_SIZE, IMAGE_SIZE), generator=g, dtype=torch.uint8)
    image[label] += 100
    boxes = torch.rand(1, 4, generator=g) if index % 4 < 2 else torch.zeros(0, 4)
    return {"image": image, "label": label, "boxes": boxes, "index": index}


class ToyDetector(nn.Module):
    """Linear -> LayerNorm -> ReLU -> Dropout, with a class head and a box head.

    Args:
        hidden: width of the hidden layer.
        dropout: dropout probability (consumes the torch RNG: resume must restore it).
        fail_at, fail: in the `fail_at`-th training forward (1-based) of this process, rank r
            does ``fail[r]``: "raise" an error, make a user "mistake" (a UserError), "kill" itself with SIGKILL, "sleep" 10 minutes,
            return a "nan" loss_box (from then on), or "" nothing.
        fail_marker: a file that gets the time.time() of the failure, for timing the shutdown.
    """

    def __init__(self, *, hidden: int = 16, dropout: float = 0.0, fail_at: int = 0, fail: list[str] = (),
                 fail_marker: str = ""):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * IMAGE_SIZE**2, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                  nn.Dropout(dropout))
        self.cls_head = nn.Linear(hidden, NUM_CLASSES)
        self.box_head = nn.Linear(hidden, 4)
        rank = comm.get_rank()
        self.fail_at, self.fail_mode = fail_at, fail[rank] if rank < len(fail) else ""
        self.fail_marker = fail_marker
        self.calls = 0

    def forward(self, batch: list[dict]):
        device = self.cls_head.weight.device
        x = torch.stack([b["image"] for b in batch]).to(device).float() / 255.0
        hidden = self.body(x)
        logits, boxes = self.cls_head(hidden), self.box_head(hidden)
        if not self.training:
            return [{"scores": s} for s in logits.float().softmax(-1)]
        self.calls += 1
        self.compute_dtype = str(logits.dtype)  # what autocast gave the layers, for the AMP test
        if self.calls == self.fail_at:
            self._fail()
        labels = torch.tensor([b["label"] for b in batch], device=device)
        has_box = torch.tensor([len(b["boxes"]) > 0 for b in batch], device=device, dtype=torch.float32)
        targets = torch.stack([b["boxes"][0] if len(b["boxes"]) else torch.zeros(4) for b in batch]).to(device)
        # Normalised by the batch size, not the number of boxes, so the mean over ranks equals
        # the loss of the whole batch (what makes N-process DDP comparable to one process).
        loss_box = (F.l1_loss(boxes.float(), targets, reduction="none").mean(1) * has_box).sum() / len(batch)
        if self.fail_mode == "nan" and self.calls >= self.fail_at > 0:
            loss_box = loss_box * float("nan")
        return {"loss_cls": F.cross_entropy(logits.float(), labels), "loss_box": loss_box}

    def _fail(self) -> None:
        if self.fail_marker and self.fail_mode in ("raise", "kill"):
            with open(self.fail_marker, "w") as f:
                f.write(repr(time.time()))
        if self.fail_mode == "raise":
            raise RuntimeError(f"injected failure on rank {comm.get_rank()}")
        if self.fail_mode == "mistake":
            raise UserError(f"injected mistake on rank {comm.get_rank()}")
        if self.fail_mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail_mode == "sleep":
            time.sleep(600)


def list_collate(batch: list[dict]) -> list[dict]:
    return batch


class ToyLoader:
    """Infinite stream of ``list[dict]`` batches; rank r takes the r-th slice of each global batch.

    Resumable: ``state_dict() == {"position": batches yielded}``; `load_state_dict` before `iter`.
    Epoch e is shuffled with seed ``seed + e`` (or in order with ``shuffle=False``).
    """

    def __init__(self, *, size: int = 64, total_batch_size: int = 4, shuffle: bool = True, seed: int = 0,
                 num_workers: int = 0):
        assert size % total_batch_size == 0 and total_batch_size % comm.get_world_size() == 0
        self.size, self.total, self.shuffle, self.seed = size, total_batch_size, shuffle, seed
        self.num_workers = num_workers
        self.position = 0

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]

    def _indices(self, start: int):
        local = self.total // comm.get_world_size()
        for batch in itertools.count(start):
            epoch, offset = divmod(batch * self.total, self.size)
            order = np.random.default_rng(self.seed + epoch).permutation(self.size) if self.shuffle \
                else np.arange(self.size)
            mine = order[offset: offset + self.total][comm.get_rank() * local: (comm.get_rank() + 1) * local]
            yield from (int(i) for i in mine)

    def __iter__(self):
        local = self.total // comm.get_world_size()
        if self.num_workers == 0:
            indices = self._indices(self.position)
            batches = ([make_sample(next(indices)) for _ in range(local)] for _ in itertools.count())
        else:
            dataset = [make_sample(i) for i in range(self.size)]
            batches = torch.utils.data.DataLoader(dataset, sampler=self._indices(self.position), batch_size=local,
                                                  collate_fn=list_collate, num_workers=self.num_workers)
        for batch in batches:
            self.position += 1
            yield batch


def toy_test_loader(*, size: int = 8, batch_size: int = 4) -> list[list[dict]]:
    return [[make_sample(1000 + i) for i in range(s, s + batch_size)] for s in range(0, size, batch_size)]


class ToyEvaluator:
    """Classification accuracy in percent, reported as ``{"bbox": {"AP": ...}}``."""

    def __init__(self, *, output_dir: str | None = None):
        self.output_dir = output_dir

    def reset(self) -> None:
        self.correct = self.total = 0

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            self.correct += int(out["scores"].argmax()) == inp["label"]
            self.total += 1

    def evaluate(self) -> dict:
        return {"bbox": {"AP": 100.0 * self.correct / max(self.total, 1)}}


class CrashAfter(Hook):
    """Raises after step `iteration` (after that step's checkpoint), like a job killed right then;
    with ``interrupt=True`` a KeyboardInterrupt, as Ctrl-C does."""

    def __init__(self, *, iteration: int, rank: int = -1, interrupt: bool = False):
        self.iteration, self.rank, self.interrupt = iteration, rank, interrupt

    def after_step(self, state: TrainState) -> None:
        if state.iteration == self.iteration and self.rank in (-1, comm.get_rank()):
            raise (KeyboardInterrupt if self.interrupt else RuntimeError)(
                f"crash after step {state.iteration} on rank {comm.get_rank()}")


class RecordSteps(Hook):
    """Appends ``{"iteration", "metrics": names, "dtype": model.compute_dtype}`` to `path` (JSON
    lines, rank 0) after every step: shows that recipe hooks run and what they see."""

    def __init__(self, *, path: str):
        self.path = path

    def after_step(self, state: TrainState) -> None:
        if comm.is_main_process():
            record = {"iteration": state.iteration, "metrics": sorted(state.metrics),
                      "dtype": getattr(state.model, "compute_dtype", None)}
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def toy_recipe(**trainer) -> DictConfig:
    """A complete training recipe around the toy pieces; `trainer` overrides trainer keys."""
    from detrun.recipes.common.optim import SGD
    from detrun.recipes.common.schedules import multistep
    from detrun.recipes.common.trainer import trainer as trainer_defaults

    cfg = OmegaConf.create({
        "model": L(ToyDetector)(),
        "dataloader": {"train": L(ToyLoader)(size=32, total_batch_size=4, shuffle=True)},
        "optimizer": SGD,
        "lr_scheduler": multistep,
        "trainer": trainer_defaults,
    })
    cfg.optimizer.lr = 0.1
    cfg.lr_scheduler.warmup_length = 0.1
    cfg.trainer.max_iter = 20
    cfg.trainer.log_period = 5
    cfg.trainer.checkpoint_period = 10
    for key, value in trainer.items():
        OmegaConf.update(cfg, f"trainer.{key}", value, force_add=True)
    return cfg


def train_toy(run_dir: Path, cfg: DictConfig) -> Path:
    """`run_train` in this process (it spawns when cfg asks for several); returns `run_dir`."""
    from detrun.engine import run_train

    run_dir.mkdir(parents=True, exist_ok=True)
    run_train(cfg, run_dir)
    return run_dir


def straight_and_resumed(root: Path, cfg: DictConfig, crash_after: int) -> tuple[Path, Path]:
    """Train `cfg` uninterrupted in ``root/straight``, and in ``root/resumed`` crashed right
    after step `crash_after` (and its checkpoint), then resumed to the end; return both run dirs."""
    import pytest  # only tests call this; the launcher processes they start import this module too

    straight = train_toy(root / "straight", cfg)
    crashed = cfg.copy()
    crashed.trainer.hooks = [L(CrashAfter)(iteration=crash_after)]
    with pytest.raises(RuntimeError, match=f"crash after step {crash_after}"):
        train_toy(root / "resumed", crashed)
    resume = cfg.copy()
    resume.trainer.resume = True
    return straight, train_toy(root / "resumed", resume)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def launch_env(**extra: str) -> dict:
    """The environment for a launcher subprocess: engine_toy importable, no inherited job."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(__file__), env.get("PYTHONPATH")]))
    return {**env, **extra}


def main() -> None:
    """``python -c "import engine_toy; engine_toy.main()" RUN_DIR JSON``: `run_train` on the toy
    recipe merged with the JSON overrides (for tests that need the launcher as its own process).

    With TOY_DIR_PER_PROCESS=1 each process uses ``RUN_DIR/proc{RANK}``, as Hydra gives each
    process started by torchrun or srun a run directory of its own.
    """
    import sys

    run_dir = Path(sys.argv[1])
    if os.environ.get("TOY_DIR_PER_PROCESS"):
        run_dir = run_dir / f"proc{os.environ['RANK']}"
    train_toy(run_dir, OmegaConf.merge(toy_recipe(), json.loads(sys.argv[2])))
