"""How training failures end on the command line (``python -m detrun`` in a subprocess, the toy
recipe): a user's problem is one ``error:`` line with exit 2, Ctrl-C a short note with exit 130,
and a failure in a DDP worker is reported once, naming the rank."""
import signal
import subprocess
import sys
import time

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
    return subprocess.Popen(cmd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
