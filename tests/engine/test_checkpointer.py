import random

import numpy as np
import pytest
import torch
from torch import nn

from detrun.checkpoint import CheckpointError
from detrun.engine.checkpointer import Checkpointer, RNGState


class Counter:
    def __init__(self):
        self.value = 0

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def _checkpointer(run_dir, keep=2):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    counter = Counter()
    return Checkpointer(run_dir, keep=keep, shared={"model": model, "optimizer": optimizer},
                        per_rank={"loader": counter}), model, counter


def test_keeps_the_newest_k_and_resumes_from_the_newest(tmp_path):
    ckpt, model, counter = _checkpointer(tmp_path, keep=2)
    for it in (10, 20, 30):
        counter.value = it
        with torch.no_grad():
            model.weight.fill_(it)
        ckpt.save(it)
    assert [p.name for p in ckpt.checkpoints()] == ["model_0000020.pth", "model_0000030.pth"]
    fresh, fresh_model, fresh_counter = _checkpointer(tmp_path)
    assert fresh.resume(True) == 30
    assert fresh_counter.value == 30 and torch.all(fresh_model.weight == 30)
    assert fresh.resume(False) == 0


def test_falls_back_past_an_unreadable_newest_checkpoint(tmp_path):
    ckpt, _, counter = _checkpointer(tmp_path, keep=0)
    for it in (1, 2):
        counter.value = it
        ckpt.save(it)
    newest = ckpt.checkpoints()[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    fresh, _, fresh_counter = _checkpointer(tmp_path)
    assert fresh.resume(True) == 1 and fresh_counter.value == 1


def test_explicit_sources_and_errors(tmp_path):
    old_run = tmp_path / "old"
    ckpt, _, _ = _checkpointer(old_run)
    ckpt.save(7)
    ckpt.save(8)
    new, _, _ = _checkpointer(tmp_path / "new")
    assert new.resume(True) == 0  # nothing in this run yet: a fresh start
    assert new.resume(str(old_run)) == 8
    assert new.resume(str(old_run / "checkpoints" / "model_0000007.pth")) == 7
    with pytest.raises(CheckpointError, match="neither a checkpoint file nor a run directory"):
        new.resume(str(tmp_path / "missing"))
    (old_run / "checkpoints" / "model_0000008.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model_0000008.pth"):
        new.resume(str(old_run / "checkpoints" / "model_0000008.pth"))


def test_rng_state_restores_every_generator():
    rng = RNGState()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    saved = rng.state_dict()
    first = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    rng.load_state_dict(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == first


def test_retention_counts_only_this_runs_checkpoints(tmp_path):
    """Checkpoints of later iterations, left by a run this one doesn't continue (it resumed from
    an earlier checkpoint), sort newer: they must not push this run's own checkpoints out."""
    old, _, _ = _checkpointer(tmp_path, keep=0)
    for it in (30, 40):
        old.save(it)
    ckpt, _, _ = _checkpointer(tmp_path, keep=2)
    for it in (10, 20, 25):
        ckpt.save(it)
    assert [p.name for p in ckpt.checkpoints()] == [
        "model_0000020.pth", "model_0000025.pth", "model_0000030.pth", "model_0000040.pth"]
