"""The one dispatch point: automatic choice, env var, explicit requests and their errors; the doctor."""
import os
import subprocess
import sys

import pytest
import torch

from detrun import kernels
from detrun.ops import OpsBackendError, dispatch, paste_masks, roi_align
from detrun.ops.doctor import report, run_doctor

CPU = torch.device("cpu")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


def test_automatic_on_cpu(no_env):
    for op in ("roi_align", "nms", "batched_nms"):
        for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            assert dispatch.choose(op, CPU, dtype) == "torchvision"
    # torchvision has no mask paste: the torch fallback.
    assert dispatch.choose("paste_masks", CPU, torch.float32) == "torch"
    # Training on the CPU: the torch roi_align, whose backward is the faster one.
    assert dispatch.choose("roi_align", CPU, torch.float32, needs_grad=True) == "torch"
    assert dispatch.choose("nms", CPU, torch.float32, needs_grad=True) == "torchvision"
    features = torch.zeros(1, 2, 8, 8, requires_grad=True)
    assert dispatch.select("roi_align", features) == "torch"
    with torch.no_grad():
        assert dispatch.select("roi_align", features) == "torchvision"
    assert dispatch.select("roi_align", features.detach()) == "torchvision"


def test_env_var_prefers_but_falls_back_on_coverage(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert dispatch.choose("roi_align", CPU, torch.float32) == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "torchvision")
    assert dispatch.choose("paste_masks", CPU, torch.float32) == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert dispatch.choose("nms", CPU, torch.float32) == "torchvision"
    monkeypatch.setenv(dispatch.ENV_VAR, "cuda-please")
    with pytest.raises(OpsBackendError, match="DETRUN_OPS_BACKEND='cuda-please'"):
        dispatch.choose("nms", CPU, torch.float32)


def test_explicit_backend_errors(no_env):
    with pytest.raises(OpsBackendError, match="no paste_masks"):
        paste_masks(torch.zeros(1, 4, 4), torch.zeros(1, 4), (5, 5), backend="torchvision")
    with pytest.raises(OpsBackendError, match="not an ops backend"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, backend="cuda")
    with pytest.raises(OpsBackendError, match="float64"):
        dispatch.choose("roi_align", CPU, torch.float64, backend="triton")
    if not torch.cuda.is_available():
        with pytest.raises(OpsBackendError, match="no CUDA device"):
            dispatch.choose("nms", torch.device("cuda"), torch.float32, backend="torch")


def test_triton_on_cpu_needs_the_interpreter(monkeypatch, no_env):
    monkeypatch.setattr(kernels, "INTERPRETED", False)
    dispatch._triton_unavailable.cache_clear()
    try:
        with pytest.raises(OpsBackendError, match="TRITON_INTERPRET=1"):
            roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, backend="triton")
        monkeypatch.setenv(dispatch.ENV_VAR, "triton")
        with pytest.raises(OpsBackendError, match="DETRUN_OPS_BACKEND='triton' cannot run on cpu"):
            dispatch.choose("nms", CPU, torch.float32)
    finally:
        monkeypatch.undo()
        dispatch._triton_unavailable.cache_clear()


def test_doctor_in_process(tmp_path, capsys, no_env):
    run_doctor(None, tmp_path)
    printed = capsys.readouterr().out
    assert printed.strip() == (tmp_path / "doctor.txt").read_text().strip() == report()
    for needle in (f"torch        {torch.__version__}", "triton", "roi_align    torchvision", "paste_masks  torch"):
        assert needle in printed


def test_doctor_command_without_interpreter():
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", dispatch.ENV_VAR)}
    out = subprocess.run([sys.executable, "-m", "detrun.ops"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "cpu  triton      no: Triton runs CPU tensors only in interpreter mode" in out
    assert "nms          torchvision" in out


def test_kernels_compile_for_a_gpu():
    # The interpreter skips Triton's code generation: compile every kernel for sm_80 with the
    # ptxas bundled in Triton's wheel (no GPU needed).
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = os.path.join(os.path.dirname(__file__), "gpu_compile_check.py")
    done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) >= 5 and all(line.endswith(" ok") for line in lines)


def test_first_op_inside_jit_trace(no_env):
    """The lazy torchvision check may first run inside torch.jit.trace (a fresh process: it is cached)."""
    code = ("import torch; from detrun.ops import roi_align;"
            "x, b = torch.rand(1, 1, 8, 8), torch.tensor([[0, 0, 0, 4, 4.0]]);"
            "traced = torch.jit.trace(lambda x, b: roi_align(x, b, 2), (x, b), check_trace=False);"
            "assert torch.equal(traced(x, b), roi_align(x, b, 2))")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, capture_output=True)
