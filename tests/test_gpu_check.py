"""benchmarks/gpu_check: the message and exit status without a GPU, and its code paths without one
(compiled, imported, the table rendered, every section run on CPU at toy sizes)."""
import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    """benchmarks/gpu_check.py as a module; sys.path and the benchmark modules it imports (ops, model:
    names other tests must not see) are put back afterwards."""
    path, modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    yield gpu_check
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name in ("gpu_check", "ops", "model"):
            del sys.modules[name]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_without_gpu_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu_check.md"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU found: nothing to check" in proc.stdout
    assert not out.exists()


def test_compiles_and_renders_one_table(gpu_check):
    py_compile.compile(str(SCRIPT), doraise=True)
    assert all(callable(gpu_check.section(name, 5)) for name in gpu_check.SECTIONS)
    try:
        raise RuntimeError("CUDA error: out of memory | while compiling")
    except RuntimeError as error:
        failed = gpu_check.failure_row("train", error, "train amp fp16")
    rows = [("nms", "nms 1000 boxes", "torchvision (reference)", 2.0, ""),
            ("nms", "nms 1000 boxes", "triton", 0.5, ""),
            ("train", "step", "amp off (reference)", 300.0, "peak 9.5 GiB"),
            ("train", "step", "amp bf16", 150.0, ""), failed]
    lines = gpu_check.render(rows).splitlines()
    assert lines[0] == "| section | case | variant | ms | ratio | note |"
    assert len(lines) == 2 + len(rows)
    assert lines[3] == "| nms | nms 1000 boxes | triton | 0.50 | 0.25 |  |"
    assert lines[5] == "| train | step | amp bf16 | 150.00 | 0.50 |  |"
    assert lines[6].startswith("| train | could not run train amp fp16: RuntimeError: CUDA error: out of memory \\| while")
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 7 for line in lines)  # the error's "|" escaped: 6 cells


def test_reads_pytest_output(gpu_check):
    out = ("FAILED tests/ops/test_nms.py::test_x[triton-cuda] - AssertionError\n"
           "SKIPPED [2] tests/ops/test_roi_align.py:40: Triton is not installed\n"
           "1 failed, 56 passed, 2 skipped, 180 deselected in 40.1s\n")
    assert gpu_check.pytest_summary(out) == "1 failed, 56 passed, 2 skipped, 180 deselected"
    assert gpu_check.pytest_note(out, ["tests/ops/test_nms.py::test_x[triton-cuda]"]).startswith("failed: tests/ops")
    assert gpu_check.pytest_note(out, []) == "skipped: Triton is not installed"


def test_sections_run_on_cpu_at_toy_sizes(gpu_check, monkeypatch):
    # The GPU sections' code on CPU (torch backend, tiny inputs, a small recipe), so that a wrong
    # call into the benchmark helpers or the model shows here rather than on the GPU machine.
    monkeypatch.setattr(gpu_check.model_bench, "IMAGE_SIZE", (64, 96))
    monkeypatch.setattr(gpu_check, "RECIPE", "shapes_mask_rcnn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # threads of a busy shared machine spin: one is ~10x faster here
    try:
        rows = gpu_check.check_roi_align(1, ("torch",), (8,), (8, 20, 30), 40)
        rows += gpu_check.check_nms(1, ("torch",), (50,))
        rows += gpu_check.check_paste_masks(1, ("torch",), 3, (100, 152))
        rows += gpu_check.check_train(1, "cpu", ("off", "fp16"), batch=1, warmup=0)
        rows += gpu_check.check_inference(1, "cpu", ("off",), warmup=0)
    finally:
        torch.set_num_threads(threads)
    assert {r[0] for r in rows} == {"roi_align", "nms", "paste_masks", "train", "inference"}
    assert all(ms is not None and ms > 0 for _, _, _, ms, _ in rows), [r for r in rows if r[3] is None]
    assert rows[-1][4].endswith("detections")
    assert "| train |" in gpu_check.render(rows)
