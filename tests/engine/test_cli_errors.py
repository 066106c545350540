"""How training failures end on the command line (``python -m detrun`` in a subprocess, the toy
recipe): a user's problem is one ``error:`` line with exit 2, Ctrl-C a short note with exit 130,
and a failure in a DDP worker is reported once, naming the rank (also under torchrun, where
every rank runs the command line)."""
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from engine_toy import launch_env

RECIPE = """from engine_toy import toy_recipe

_cfg = toy_recipe()
model, dataloader, optimizer, lr_scheduler, trainer = (
    _cfg.model, _cfg.dataloader, _cfg.optimizer, _cfg.lr_scheduler, _cfg.trainer)
"""


def _start(tmp_path, *overrides, **env):
    recipe = tmp_path / "toy_train.py"
    recipe.write_text(RECIPE)
    cmd = [sys.executable, "-m", "detrun", f"recipe={recipe}", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    environment = {k: v for k, v in launch_env(OMP_NUM_THREADS="1").items() if k != "HYDRA_FULL_ERROR"}
    environment.update(env)
    # A shell without job control starts background jobs with SIGINT ignored, and children inherit
    # that: restore the default so Ctrl-C reaches the child however the tests were started.
    return subprocess.Popen(cmd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _run(tmp_path, *overrides, **env):
    proc = _start(tmp_path, *overrides, **env)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_non_finite_loss_is_one_line_and_a_traceback_on_request(tmp_path):
    nan = ["+model.fail_at=3", "+model.fail=['nan']", "trainer.checkpoint_period=2"]
    code, err = _run(tmp_path, *nan)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("error: non-finite loss loss_box in iteration 3"), err
    assert "Traceback" not in err
    code, err = _run(tmp_path, *nan, "trainer.resume=true", HYDRA_FULL_ERROR="1")
    assert code != 0 and "Traceback" in err and "NonFiniteLossError" in err


def test_ctrl_c_ends_with_a_short_note_and_exit_130(tmp_path):
    # Step 5 sleeps in its forward pass: Ctrl-C arrives mid-training, after the checkpoint of step 4.
    proc = _start(tmp_path, "+model.fail_at=5", "+model.fail=[sleep]", "trainer.checkpoint_period=2")
    checkpoint = tmp_path / "run" / "checkpoints" / "model_0000004.pth"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("error: training interrupted (Ctrl-C)"), err
    assert f"the last checkpoint is {checkpoint}" in last and "trainer.resume=true" in last


def test_a_mistake_in_ddp_workers_is_reported_once_naming_the_rank(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")  # a previous run's: both ranks refuse
    code, err = _run(tmp_path, "trainer.num_processes=2")
    assert code == 2, err
    assert err.count("already holds a run") == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: rank ")


def _torchrun(tmp_path, *overrides):
    """``torchrun --nproc-per-node 2 -m detrun ...`` on the toy recipe; returns (exit code, stderr)."""
    recipe = tmp_path / "toy_train.py"
    recipe.write_text(RECIPE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "detrun", f"recipe={recipe}", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    environment = {k: v for k, v in launch_env(OMP_NUM_THREADS="1").items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(cmd, env=environment, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case, overrides, message", [
    # before the ranks meet: every rank finds it, the first rank of the machine prints it
    ("total batch", ["dataloader.train.total_batch_size=3"], r"error: dataloader.train.total_batch_size=3 can't be split"),
    # in the worker, the same in both ranks (rank 0 looks, both refuse)
    ("run dir", [], r"error: rank [01]: the run directory .* already holds a run"),
    # in the worker, rank 1 alone; rank 0, stopped by the watchdog, stays quiet about it
    ("one rank", ["+model.fail_at=2", "+model.fail=['','mistake']"], r"error: rank 1: injected mistake on rank 1$"),
])
def test_under_torchrun_a_mistake_is_printed_once(tmp_path, case, overrides, message):
    if case == "run dir":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "metrics.jsonl").write_text("")
    code, err = _torchrun(tmp_path, *overrides)
    assert code != 0, err
    ours = re.findall(r"(?:error: |\[detrun\] ).*", err)  # rank 0's progress bar may precede it on the line
    assert len(ours) == 1 and re.match(message, ours[0]), err
    # torchrun prints its own summary (with its own traceback); none comes from detrun's code
    assert "/detrun/" not in "".join(line for line in err.splitlines() if line.lstrip().startswith("File ")), err


def test_which_rank_prints_a_mistake(monkeypatch):
    from detrun.cli.main import reports
    from detrun.errors import UserError, WorkerError

    assert reports(UserError("x"))  # a plain process
    job = {"RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for key, value in job.items():
        monkeypatch.setenv(key, value)
    for local_rank, prints in (("1", False), ("0", True)):
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        assert reports(UserError("before the ranks meet")) is prints
        assert reports(WorkerError("rank 3: its own failure"))
        assert not reports(WorkerError("rank 3: reported by another rank", quiet=True))
