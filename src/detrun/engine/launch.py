"""Start the processes of a run and connect them into one process group.

Decided once, from the environment, in this order:

1. torchrun set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT: this process is
   one rank and torchrun started the others.
2. A SLURM job step with several tasks (``srun``, Hydra's submitit launcher): SLURM_PROCID is
   the rank, SLURM_LOCALID the local rank, the step's first node hosts the rendezvous.
3. Otherwise our own launcher: ``trainer.gpus`` processes per machine (one per GPU, NCCL),
   or ``trainer.num_processes`` on CPU (gloo), on each of ``trainer.num_machines`` machines,
   meeting at ``trainer.dist_url``. One process in total runs in place, without a group.

No hangs: if a rank raises, it posts the reason in the rendezvous store, and a watchdog
thread in every rank polls the store and exits the process as soon as it sees a failure or
loses the store (its host died). On each machine our launcher also terminates the sibling
processes of a failed one, and posts the failure for the other machines.

Reported once: a user mistake in a rank becomes a `WorkerError` ("rank N: message"), and of
ranks failing with the same message only the first reports it (the others' errors are
`quiet`). Our launcher re-raises the first report; under torchrun and SLURM each rank ends on
its own, and the command line prints only reports that aren't quiet. Ranks that the watchdog
stops stay silent about a failure of their own machine (it was reported there); the first
rank of each other machine names it. Rank 0 of our launcher also logs into the launcher's
log files (Hydra's ``main.log``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException, ProcessRaisedException
from omegaconf import DictConfig, OmegaConf

from detrun.data import carry_registrations
from detrun.errors import UserError, WorkerError, user_error
from detrun.utils import comm

logger = logging.getLogger(__name__)

Worker = Callable[[DictConfig, Path, torch.device], None]
# Longest a collective may wait for a slow rank (e.g. one writing a checkpoint) before the job
# fails. Failures of a rank don't wait for it: the watchdog stops the others within seconds.
DIST_TIMEOUT = timedelta(minutes=30)
WATCHDOG_POLL_S = 1.0
# A rank told of another's failure waits this long before exiting, so the failed rank's own
# traceback reaches its launcher first (the launcher reports the first process to exit).
ABORT_GRACE_S = 3.0
_ABORT_KEY = "detrun/abort"
_REPORTED_KEY = "detrun/reported"


class LaunchError(UserError, ValueError):
    """Launch settings that can't work on this machine; the message says what to set instead."""


@dataclass(frozen=True)
class Rendezvous:
    """Where one process stands in the job and where the ranks meet (a TCPStore)."""

    rank: int
    local_rank: int
    world_size: int
    host: str
    port: int
    node: int = 0  # which machine of the job
    store_on_agent: bool = False  # torchrun's agent hosts the store, not rank 0
    attempt: int = 0  # torchrun restart count: a restarted job must not see the old abort
    # Print why this rank stops when another failed (the first rank of each machine does, for
    # a failure on another machine). Off for our launcher on one machine: it reports itself.
    announce_aborts: bool = True

    @property
    def abort_key(self) -> str:
        return f"{_ABORT_KEY}/{self.attempt}"


def job_rendezvous() -> Rendezvous | None:
    """This process's place in a job that torchrun or srun started, or None (a plain process)."""
    return _from_torchrun() or _from_slurm()


def launch(worker: Worker, cfg: DictConfig, run_dir: Path) -> bool:
    """Run ``worker(cfg, run_dir, device)`` in every process of the job, as `cfg.trainer` asks.

    Args:
        worker: a module-level function (spawned processes import it by name).
        cfg: the full recipe; spawned processes rebuild it from a resolved container.
        run_dir: the run directory, shared by all processes (on several machines: a shared
            file system).
    Returns:
        True in the one process that speaks for the job (prints its summary): machine 0's
        launcher, or global rank 0 under torchrun and SLURM.
    Raises:
        LaunchError: GPUs asked for but missing, or inconsistent process counts or batch size.
        WorkerError: a spawned process stopped on a user mistake (after the others were stopped).
        ProcessException: a spawned process failed otherwise.
    """
    t = cfg.trainer
    gpus = int(t.gpus)
    rendezvous = job_rendezvous()
    if rendezvous is not None:
        _check_gpus(gpus, needed=1 if gpus else 0)
        _check_total_batch(cfg, rendezvous.world_size, "started by torchrun or srun")
        if gpus == 0 and torch.cuda.is_available():
            logger.warning("trainer.gpus=0: training on CPU although CUDA is available")
        _run(worker, cfg, run_dir, rendezvous, gpus > 0)
        return rendezvous.rank == 0
    if gpus > 0 and int(t.num_processes) != 1:
        raise LaunchError(
            f"trainer.num_processes={t.num_processes} is for CPU runs (trainer.gpus=0); with "
            f"trainer.gpus={gpus} one process runs per GPU: leave trainer.num_processes=1")
    per_machine = gpus or int(t.num_processes)
    _check_gpus(gpus, needed=gpus)
    if per_machine < 1 or int(t.num_machines) < 1 or not 0 <= int(t.machine_rank) < int(t.num_machines):
        raise LaunchError(
            f"trainer.num_processes={t.num_processes}, num_machines={t.num_machines}, machine_rank={t.machine_rank}: "
            "counts must be >= 1 and machine_rank one of 0 .. num_machines-1")
    world_size = per_machine * int(t.num_machines)
    counts = f"trainer.{'gpus' if gpus else 'num_processes'}={per_machine}" + \
        (f" x trainer.num_machines={t.num_machines}" if int(t.num_machines) > 1 else "")
    _check_total_batch(cfg, world_size, counts)
    if world_size == 1:
        worker(cfg, run_dir, torch.device("cuda", 0) if gpus else torch.device("cpu"))
        return True
    host, port = _parse_dist_url(str(t.dist_url), int(t.num_machines))
    container = OmegaConf.to_container(cfg, resolve=True)
    # Rank 0 logs where this launcher logs (Hydra's main.log): spawned interpreters start without handlers.
    log_files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    with tempfile.TemporaryDirectory(prefix="detrun-errors-") as report_dir:
        # Data sets a recipe registered exist only in this process: carry them to the workers.
        args = (carry_registrations(worker), container, run_dir, int(t.machine_rank), per_machine, world_size, host,
                port, gpus > 0, log_files, report_dir)
        context = mp.start_processes(_spawned, args=args, nprocs=per_machine, join=False, start_method="spawn")
        try:
            while not context.join():
                pass
        except ProcessException as exc:
            # Machine 0's rank 0 hosts the store: if it failed, the store is gone and the others notice.
            if int(t.machine_rank) > 0:
                _post_abort_remote(host, port, f"a process on machine {t.machine_rank} failed: {exc}".splitlines()[0],
                                   int(t.machine_rank))
            mistake = _first_user_error(Path(report_dir))
            if mistake is not None:
                raise mistake from exc
            # The first process to exit may be one the watchdog stopped; report the one that raised.
            raised = None if isinstance(exc, ProcessRaisedException) else _raised_in_child(context)
            if raised is not None:
                raise raised from exc
            raise
        except KeyboardInterrupt:
            # Ctrl-C in a terminal reaches the children as well, but `kill -INT` of the launcher doesn't.
            _stop(context)
            raise
    return int(t.machine_rank) == 0


def _check_total_batch(cfg: DictConfig, world_size: int, counts: str) -> None:
    """Refuse a total batch the processes can't share evenly (each rank loads total / world_size)."""
    total = OmegaConf.select(cfg, "dataloader.train.total_batch_size")
    if isinstance(total, int) and total % world_size:
        raise LaunchError(
            f"dataloader.train.total_batch_size={total} can't be split evenly over the {world_size} processes "
            f"of this run ({counts}); set it to a multiple of {world_size}")


def _first_user_error(report_dir: Path) -> WorkerError | None:
    """The user mistake a spawned process reported first (see `_spawned`), if any."""
    reports = sorted(report_dir.glob("rank*.txt"), key=lambda p: p.stat().st_mtime_ns)
    return WorkerError(reports[0].read_text()) if reports else None


def _stop(context: mp.ProcessContext) -> None:
    for process in context.processes:
        if process.is_alive():
            process.terminate()
    for process in context.processes:
        process.join(timeout=10)


def _raised_in_child(context: mp.ProcessContext) -> ProcessRaisedException | None:
    """The exception a spawned process raised, from the traceback torch's spawn wrapper saved."""
    for index, path in enumerate(context.error_files):
        if os.access(path, os.R_OK):
            with open(path, "rb") as f:  # written by our own child process
                trace = pickle.load(f)
            return ProcessRaisedException(f"\n\n-- Process {index} terminated with the following error:\n{trace}",
                                          index, context.processes[index].pid)
    return None


def _check_gpus(gpus: int, needed: int) -> None:
    if gpus < 0:
        raise LaunchError(f"trainer.gpus={gpus} must be >= 0 (0 runs on CPU)")
    available = torch.cuda.device_count()
    if needed > available:
        raise LaunchError(
            f"trainer.gpus={gpus} asks for {needed} GPU(s) but this machine has {available} usable CUDA "
            "device(s). To train on CPU set trainer.gpus=0 (and trainer.num_processes=N for N-process "
            "CPU data parallelism with gloo).")


def _parse_dist_url(url: str, num_machines: int) -> tuple[str, int]:
    if url == "auto":
        if num_machines > 1:
            raise LaunchError(
                "trainer.dist_url=auto only works on one machine; with trainer.num_machines>1 set "
                "trainer.dist_url=tcp://<address of machine 0>:<free port>, the same on every machine")
        with socket.socket() as s:  # a port that was free a moment ago; the race is harmless in practice
            s.bind(("127.0.0.1", 0))
            return "127.0.0.1", s.getsockname()[1]
    match = re.fullmatch(r"tcp://([^:/]+|\[[0-9a-fA-F:]+\]):(\d+)/?", url)
    if not match:
        raise LaunchError(f"trainer.dist_url='{url}' is not 'auto' or 'tcp://HOST:PORT'")
    return match.group(1).strip("[]"), int(match.group(2))


def _from_torchrun() -> Rendezvous | None:
    env = os.environ
    if not all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")):
        return None
    return Rendezvous(rank=int(env["RANK"]), local_rank=int(env["LOCAL_RANK"]), world_size=int(env["WORLD_SIZE"]),
                      host=env["MASTER_ADDR"], port=int(env["MASTER_PORT"]), node=int(env.get("GROUP_RANK", 0)),
                      store_on_agent=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
                      attempt=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)))


def _from_slurm() -> Rendezvous | None:
    env = os.environ
    # SLURM_STEP_NUM_TASKS is set by srun for its tasks, not in a batch script's own shell:
    # a plain `python -m detrun` inside an allocation stays a single launcher process.
    if int(env.get("SLURM_STEP_NUM_TASKS", 1)) <= 1:
        return None
    nodes = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
    # A per-job port, so two jobs sharing a first node don't meet each other.
    port = int(env.get("MASTER_PORT") or 20000 + int(env.get("SLURM_JOB_ID", 0)) % 20000)
    return Rendezvous(rank=int(env["SLURM_PROCID"]), local_rank=int(env["SLURM_LOCALID"]),
                      world_size=int(env["SLURM_STEP_NUM_TASKS"]), host=env.get("MASTER_ADDR") or first_host(nodes),
                      port=port, node=int(env.get("SLURM_NODEID", 0)))


def first_host(nodelist: str) -> str:
    """First host of a SLURM node list: ``"gpu[07-09,12],cpu1"`` -> ``"gpu07"``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise LaunchError(f"can't read the SLURM node list '{nodelist}'; set MASTER_ADDR to the first node")
    prefix, ranges = match.groups()
    return prefix + (re.split(r"[,-]", ranges)[0] if ranges else "")


def _spawned(local_rank: int, worker: Worker, container: dict, run_dir: Path, machine_rank: int,
             per_machine: int, world_size: int, host: str, port: int, use_gpus: bool, log_files: list[str],
             report_dir: str) -> None:
    """One process started by our launcher; a user mistake goes to ``report_dir/rank{R}.txt`` as one line."""
    rank = machine_rank * per_machine + local_rank
    if not logging.getLogger().handlers:  # a fresh interpreter: Hydra's logging setup isn't here
        logging.basicConfig(level=logging.INFO, format=f"[%(asctime)s rank {rank}] %(name)s %(levelname)s: %(message)s",
                            datefmt="%H:%M:%S")
        if rank == 0:
            for path in log_files:
                handler = logging.FileHandler(path)  # appends after the launcher's own lines
                handler.setFormatter(logging.getLogger().handlers[0].formatter)
                logging.getLogger().addHandler(handler)
    if not use_gpus:
        # Share the cores instead of each process using all of them (as torchrun does with OMP_NUM_THREADS).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_machine))
    rendezvous = Rendezvous(rank=rank, local_rank=local_rank, world_size=world_size, host=host, port=port,
                            node=machine_rank, announce_aborts=world_size > per_machine)
    try:
        _run(worker, OmegaConf.create(container), run_dir, rendezvous, use_gpus)
    except WorkerError as exc:
        if not exc.quiet:
            Path(report_dir, f"rank{rank}.txt").write_text(str(exc))
        raise


def _run(worker: Worker, cfg: DictConfig, run_dir: Path, rv: Rendezvous, use_gpus: bool) -> None:
    """Join the process group, run the worker under the watchdog, leave together."""
    device = torch.device("cpu")
    if use_gpus:
        # Tasks bound to one GPU each (SLURM --gpus-per-task) see a single device 0.
        device = torch.device("cuda", rv.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if rv.world_size == 1:
        worker(cfg, run_dir, device)
        return
    if rv.rank != 0:
        logging.getLogger("detrun").setLevel(logging.WARNING)  # one rank tells the story; all warn
    store = dist.TCPStore(rv.host, rv.port, rv.world_size, is_master=rv.rank == 0 and not rv.store_on_agent,
                          timeout=DIST_TIMEOUT)
    dist.init_process_group("nccl" if use_gpus else "gloo", store=store, rank=rv.rank, world_size=rv.world_size,
                            timeout=DIST_TIMEOUT, device_id=device if use_gpus else None)
    # Under torchrun, srun or on several machines each process may have made its own (Hydra)
    # run directory: everyone writes and resumes where rank 0 does.
    run_dir = Path(comm.broadcast_object(str(run_dir)))
    stop = threading.Event()
    threading.Thread(target=_watchdog, args=(store, rv, stop), daemon=True, name="detrun-watchdog").start()
    try:
        worker(cfg, run_dir, device)
    except BaseException as exc:
        stop.set()  # this rank's own watchdog must not cut short the traceback being reported
        reason = f"rank {rv.rank} failed: {type(exc).__name__}: {exc}".splitlines()[0]
        first = _post_abort(store, rv.abort_key, reason, rv.node)
        mistake = user_error(exc) if isinstance(exc, Exception) else None  # also a full or read-only disk
        if mistake is None and not first and isinstance(exc, Exception):
            # Another rank failed first, and this one almost surely because of it (a collective
            # cut short): stop as the watchdog does, leaving the report to that rank.
            time.sleep(ABORT_GRACE_S)
            os._exit(1)
        if mistake is None:
            raise
        raise WorkerError(f"rank {rv.rank}: {mistake}", exit_code=mistake.exit_code,
                          quiet=not _first_to_report(store, rv, str(mistake))) from exc
    dist.barrier()  # everyone finished: from here on, the store's host leaving is no failure
    stop.set()
    dist.barrier()
    dist.destroy_process_group()


def _first_to_report(store: dist.Store, rv: Rendezvous, message: str) -> bool:
    """Whether this rank is the first to fail with `message` (ranks often fail alike, e.g. on a
    run directory rank 0 refused for all): it reports it, the others stay quiet."""
    key = f"{_REPORTED_KEY}/{rv.attempt}/{hashlib.sha1(message.encode()).hexdigest()}"
    try:
        return store.compare_set(key, "", str(rv.rank)).decode() == str(rv.rank)
    except Exception:  # the store is gone: better twice than never
        return True


def _post_abort(store: dist.Store, key: str, reason: str, node: int) -> bool:
    """Post why this process fails, unless another did first; returns whether this one was first."""
    posted = f"{node}\t{reason}"
    try:
        # First reason wins: ranks failing because of it (broken collectives) don't overwrite it.
        return store.compare_set(key, "", posted).decode() == posted
    except Exception:  # the store's host is gone already: the others notice that instead
        return True


def _post_abort_remote(host: str, port: int, reason: str, node: int) -> None:
    """Tell the other machines' processes that this machine failed (if the store is still up)."""
    try:
        store = dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=2))
    except Exception:
        return
    _post_abort(store, f"{_ABORT_KEY}/0", reason, node)


def _watchdog(store: dist.Store, rv: Rendezvous, stop: threading.Event) -> None:
    while not stop.wait(WATCHDOG_POLL_S):
        try:
            if not store.check([rv.abort_key]):
                continue
            node, _, reason = store.get(rv.abort_key).decode().partition("\t")
            # Said on its own machine already (by the rank or its launcher); news to the others.
            announce = int(node) != rv.node and rv.local_rank == 0
        except Exception as exc:
            reason = f"lost the rendezvous store at {rv.host}:{rv.port} (its host process died?): {exc}"
            announce = True
        if stop.is_set():
            return
        if rv.announce_aborts and announce:
            print(f"[detrun] rank {rv.rank} stops because {reason}", file=sys.stderr, flush=True)
        time.sleep(ABORT_GRACE_S)
        os._exit(1)  # the main thread may be stuck in a collective that will never finish
