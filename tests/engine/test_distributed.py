"""Several processes on the CPU (gloo): our launcher, two 'machines', SLURM's and torchrun's environments.

Failure tests time, from the moment a rank fails (the toy writes it to a marker file), until
every launcher has exited non-zero (or raised, for a launcher run inside the test process).
"""
import json
import logging
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from engine_toy import CrashAfter, launch_env, read_metrics, toy_recipe, train_toy
from omegaconf import OmegaConf
from torch.multiprocessing import ProcessRaisedException

from detrun.config import L

SHUTDOWN_LIMIT_S = 30
# In order: rank 0 gets samples 0,1 (with boxes) and rank 1 samples 2,3 (without) of every batch.
DDP_RUN = {"trainer": {"max_iter": 12, "checkpoint_period": 6, "log_period": 1},
           "dataloader": {"train": {"shuffle": False}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(run_dir, overrides, **env):
    """Start ``run_train`` on the toy recipe + `overrides` as a separate launcher process."""
    return subprocess.Popen(
        [sys.executable, "-c", "import engine_toy; engine_toy.main()", str(run_dir), json.dumps(overrides)],
        env=launch_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_all(procs, marker):
    """Wait for `procs`; return their (returncode, stderr) and the seconds from the failure to the last exit."""
    results = [p.communicate(timeout=240) for p in procs]
    done = time.time()
    return [(p.returncode, err) for p, (_, err) in zip(procs, results)], done - float(marker.read_text())


def _merge(*parts):
    return OmegaConf.merge(toy_recipe(), *parts)


def test_two_processes_match_one_survive_a_crash_and_resume(tmp_path):
    """2-process gloo DDP == 1 process with the same total batch, through a crash and a resume.
    Rank 1 never sees a box: its zero-weighted loss_box keeps DDP in step."""
    one = train_toy(tmp_path / "one", _merge(DDP_RUN))

    marker, two = tmp_path / "failed_at", tmp_path / "two"
    crash = {"trainer": {"num_processes": 2}, "model": {"fail_at": 9, "fail": ["", "raise"], "fail_marker": str(marker)}}
    with pytest.raises(ProcessRaisedException, match="injected failure on rank 1"):
        train_toy(two, _merge(DDP_RUN, crash))
    assert time.time() - float(marker.read_text()) < SHUTDOWN_LIMIT_S
    assert [p.name for p in (two / "checkpoints").iterdir()] == ["model_0000006.pth"]

    # Resume with a worker process in the loader, inside the spawned DDP processes. The launcher
    # logs to a file, as Hydra's main.log: rank 0's log goes there too.
    resume = {"trainer": {"num_processes": 2, "resume": True}, "dataloader": {"train": {"num_workers": 1}}}
    main_log = logging.FileHandler(tmp_path / "main.log")
    logging.getLogger().addHandler(main_log)
    try:
        train_toy(two, _merge(DDP_RUN, resume))
    finally:
        logging.getLogger().removeHandler(main_log)
        main_log.close()
    log = (tmp_path / "main.log").read_text()
    assert "Resumed from" in log and "Training ToyDetector" in log and "rank 1" not in log
    final_one = torch.load(one / "model_final.pth", weights_only=True)["model"]
    final_two = torch.load(two / "model_final.pth", weights_only=True)["model"]
    for name, value in final_one.items():
        torch.testing.assert_close(final_two[name], value, rtol=1e-4, atol=1e-5)
    # Logged losses are the mean over ranks, hence equal to the single process's.
    m1, m2 = read_metrics(one), read_metrics(two)
    assert [m["iteration"] for m in m2] == list(range(1, 13))
    for a, b in zip(m1, m2):
        assert b["loss_box"] == pytest.approx(a["loss_box"], rel=1e-4)
        assert b["total_loss"] == pytest.approx(a["total_loss"], rel=1e-4)
    assert torch.load(two / "checkpoints" / "model_0000012.pth", weights_only=True)["world_size"] == 2


def test_a_killed_process_on_one_machine_stops_both_launchers(tmp_path):
    """Two launchers as two machines. Machine 1's process is SIGKILLed while machine 0's is busy
    (asleep): machine 1's launcher posts the failure, machine 0's watchdog ends its process."""
    marker, port = tmp_path / "failed_at", _free_port()
    procs = [
        _launcher(tmp_path / "run", {
            "trainer": {"num_machines": 2, "machine_rank": m, "dist_url": f"tcp://127.0.0.1:{port}"},
            "model": {"fail_at": 3, "fail": ["sleep", "kill"], "fail_marker": str(marker)}})
        for m in (0, 1)]
    results, elapsed = _wait_all(procs, marker)
    assert [code != 0 for code, _ in results] == [True, True]
    assert "rank 0 stops because a process on machine 1 failed" in results[0][1]
    assert "terminated with signal SIGKILL" in results[1][1]
    assert elapsed < SHUTDOWN_LIMIT_S


def test_a_killed_worker_ends_the_whole_job_non_zero(tmp_path):
    """Our launcher, 2 processes: rank 1 is SIGKILLed while rank 0 is busy (asleep)."""
    marker = tmp_path / "failed_at"
    proc = _launcher(tmp_path / "run", {"trainer": {"num_processes": 2},
                                        "model": {"fail_at": 3, "fail": ["sleep", "kill"], "fail_marker": str(marker)}})
    [(code, err)], elapsed = _wait_all([proc], marker)
    assert code != 0 and "SIGKILL" in err
    assert elapsed < SHUTDOWN_LIMIT_S


def test_slurm_tasks_find_each_other_and_stop_when_rank_0_dies(tmp_path):
    """Two tasks of an srun step (as Hydra's submitit launcher starts them): when rank 0, which
    hosts the rendezvous, is SIGKILLed, rank 1 notices within seconds instead of hanging."""
    marker, port = tmp_path / "failed_at", str(_free_port())
    overrides = {"model": {"fail_at": 3, "fail": ["kill", "sleep"], "fail_marker": str(marker)}}
    procs = [_launcher(tmp_path / "run", overrides, SLURM_STEP_NUM_TASKS="2", SLURM_PROCID=str(r), SLURM_LOCALID=str(r),
                       SLURM_JOB_NODELIST="localhost", SLURM_JOB_ID="4242", MASTER_PORT=port) for r in (0, 1)]
    results, elapsed = _wait_all(procs, marker)
    assert results[0][0] == -signal.SIGKILL
    assert results[1][0] != 0 and "rank 1 stops because lost the rendezvous store" in results[1][1]
    assert elapsed < SHUTDOWN_LIMIT_S


def test_torchrun_ranks_resume_from_rank_0s_run_dir(tmp_path):
    """Under torchrun each process gets a run dir of its own (as Hydra makes them); both ranks
    resume from rank 0's, from a checkpoint a 1-process run left, and go on as 2 ranks."""
    run = {"trainer": {"max_iter": 4, "checkpoint_period": 2, "log_period": 2}}
    with pytest.raises(RuntimeError, match="crash after step 2"):
        train_toy(tmp_path / "proc0", _merge(run, {"trainer": {"hooks": [L(CrashAfter)(iteration=2)]}}))
    resume = {**run, "trainer": {**run["trainer"], "resume": True}}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "--no-python", sys.executable, "-c", "import engine_toy; engine_toy.main()", str(tmp_path),
           json.dumps(resume)]
    proc = subprocess.run(cmd, env=launch_env(OMP_NUM_THREADS="1", TOY_DIR_PER_PROCESS="1"), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Done in") == 1  # the closing summary: rank 0's only
    assert [m["iteration"] for m in read_metrics(tmp_path / "proc0")] == [2, 4]
    state = torch.load(tmp_path / "proc0" / "checkpoints" / "model_0000004.pth", weights_only=True)
    assert state["world_size"] == 2 and [r["loader"] for r in state["ranks"]] == [{"position": 4}] * 2
    assert not (tmp_path / "proc1" / "checkpoints").exists()
