import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from detrun.checkpoint import CheckpointError
from detrun.checkpoint.io import load_training_checkpoint, remove_stale_temps, save_atomic


def _state(iteration, size=4):
    return {"format": "detrun", "model": {"w": torch.full((size,), float(iteration))}, "optimizer": {},
            "iteration": iteration}


def test_save_atomic_round_trip_leaves_no_temp_file(tmp_path):
    path = tmp_path / "model_0000005.pth"
    save_atomic(_state(5), path)
    save_atomic(_state(6), path)  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    state = load_training_checkpoint(path)
    assert state["iteration"] == 6 and torch.equal(state["model"]["w"], torch.full((4,), 6.0))


_KILLED_WRITER = textwrap.dedent("""
    import io, sys, time, torch
    from detrun.checkpoint.io import save_atomic
    path = sys.argv[1]
    save_atomic({"format": "detrun", "model": {"w": torch.ones(4)}, "optimizer": {}, "iteration": 1}, path)
    real_save = torch.save
    def half_then_hang(obj, f, *args, **kwargs):  # a slow disk: half the bytes are out, then SIGKILL
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        print("half written", flush=True)
        time.sleep(600)
    torch.save = half_then_hang
    save_atomic({"format": "detrun", "model": {"w": torch.zeros(100_000)}, "optimizer": {}, "iteration": 2}, path)
""")


def test_sigkill_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "model.pth"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = load_training_checkpoint(path)
    assert state["iteration"] == 1 and torch.equal(state["model"]["w"], torch.ones(4))
    temps = [p for p in tmp_path.iterdir() if p != path]
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the torn write went to the temp file
    assert remove_stale_temps(tmp_path) == temps and not temps[0].exists()


def test_truncated_and_weights_only_files_are_refused_by_name(tmp_path):
    path = tmp_path / "model_0000010.pth"
    save_atomic(_state(10, size=10_000), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model_0000010.pth.*truncated or corrupt"):
        load_training_checkpoint(path)
    weights = tmp_path / "model_final.pth"
    save_atomic({"format": "detrun", "model": {}}, weights)
    with pytest.raises(CheckpointError, match="not a detrun training checkpoint.*optimizer, iteration"):
        load_training_checkpoint(weights)
