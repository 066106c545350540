"""One-command GPU check: CUDA op tests, Triton kernels against torchvision, Mask R-CNN timings.

    bash benchmarks/gpu_check.sh [--out gpu_check.md] [--runs 5] [--sections tests nms ...]

On a machine with an NVIDIA GPU, these sections, each on its own (a failure becomes a row
"could not run <section>: <reason>", its traceback goes to stderr, and the next section runs):
  tests        `pytest tests/ops -k cuda` with TRITON_INTERPRET=0: the CUDA cases of every op test,
               the Triton kernels compiled for this GPU (tests/conftest.py defaults to interpreted).
  roi_align    Triton kernel vs torchvision's CUDA op (and the torch fallback), forward and backward,
               1000 and 5000 boxes on FPN level P2 of an 800x1216 image (256x200x304), 7x7 and 14x14.
  nms          nms and batched_nms (80 classes) on 1000, 5000 and 20000 RPN-like proposals.
  paste_masks  100 masks of 28x28 into 800x1216, against a per-mask interpolate loop.
  train        one training step of recipe mask_rcnn_R50 (SGD, batch 2 of 800x1216, 6 instances
               per image) with amp off, bf16, and fp16 with a GradScaler; peak GPU memory.
  inference    latency of the same model (random weights giving detections) on one 800x1216 image.
Times are medians of --runs calls after warm-up, each between torch.cuda.synchronize() calls, in
ms; "ratio" divides by the row marked "(reference)" of the same section and case. The op cases
and model inputs are benchmarks/ops.py's and benchmarks/model.py's. The whole check is meant to
take a few minutes (budget: 8; not yet timed on a GPU). One markdown table goes to stdout and to
--out (rewritten after each section, so a run cut short keeps what it measured). Without a CUDA
GPU: prints "no CUDA GPU found: nothing to check" and exits 0.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the sibling benchmarks, also when imported by tests

import model as model_bench  # noqa: E402
import ops as ops_bench  # noqa: E402

from detrun.utils.precision import autocast_dtype  # noqa: E402
from detrun.structures import BitMasks, Boxes, Instances  # noqa: E402

NO_GPU = "no CUDA GPU found: nothing to check"
RECIPE = "mask_rcnn_R50"
TRITON_AND_TORCH = ("triton", "torch")

SECTIONS = ("tests", "roi_align", "nms", "paste_masks", "train", "inference")

# (section, case, variant, ms or None, note)
Row = tuple[str, str, str, float | None, str]


def check_tests(timeout_s: int = 240) -> list[Row]:
    """One row: pytest's counts for the CUDA cases of tests/ops, its wall time, failures and skips."""
    cmd = [sys.executable, "-m", "pytest", "tests/ops", "-q", "-k", "cuda", "-rfEs", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TRITON_INTERPRET": "0"}, capture_output=True,
                          text=True, timeout=timeout_s)
    ms = (time.perf_counter() - start) * 1e3
    out = proc.stdout + proc.stderr
    if proc.returncode not in (0, 1):  # 1: some tests failed; anything else: pytest itself did not run
        last = out.strip().splitlines()[-1] if out.strip() else "no output"
        raise RuntimeError(f"pytest exited with {proc.returncode}: {last}")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    if failed:
        print(out[-6000:], file=sys.stderr)
    return [("tests", "pytest tests/ops -k cuda, TRITON_INTERPRET=0", pytest_summary(out), ms,
             pytest_note(out, failed))]


def pytest_summary(out: str) -> str:
    """"57 passed, 3 skipped, ..." from pytest's last summary line in `out`."""
    for line in reversed(out.strip().splitlines()):
        counts = re.findall(r"\d+ (?:passed|failed|skipped|deselected|errors?|xfailed|xpassed)", line)
        if counts:
            return ", ".join(counts)
    return "no summary line"


def pytest_note(out: str, failed: list[str]) -> str:
    """The first failing tests, else the first skip reason (e.g. Triton missing), else ""."""
    if failed:
        return "failed: " + ", ".join(failed[:5]) + (f" (+{len(failed) - 5} more)" if len(failed) > 5 else "")
    skipped = re.findall(r"^SKIPPED \[\d+\] \S+: (.*)$", out, re.M)
    return f"skipped: {skipped[0]}" if skipped else ""


def _op_rows(section: str, rows: list[tuple[str, str, float]]) -> list[Row]:
    return [(section, case, backend, ms, "") for case, backend, ms in rows]


def check_roi_align(runs: int, backends=TRITON_AND_TORCH, n_boxes=(1000, 5000), shape=(256, 200, 304),
                    max_side: float = 160) -> list[Row]:
    """roi_align fwd/bwd rows, shape = (channels, height, width) of the stride-4 feature map."""
    rows = []
    for n in n_boxes:
        rows += ops_bench.roi_align_rows(list(backends), runs, *shape, n, max_side, "")
    return _op_rows("roi_align", rows)


def check_nms(runs: int, backends=TRITON_AND_TORCH, sizes=(1000, 5000, 20000)) -> list[Row]:
    return _op_rows("nms", ops_bench.nms_rows(list(backends), runs, sizes, ""))


def check_paste_masks(runs: int, backends=TRITON_AND_TORCH, n_masks: int = 100, size=(800, 1216)) -> list[Row]:
    return _op_rows("paste_masks", ops_bench.paste_rows(list(backends), runs, n_masks, *size, ""))


def _measure(section: str, case: str, variant: str, fn, runs: int, warmup: int, device: torch.device,
             count=None) -> Row:
    """A row timing fn(): median ms over `runs` calls after `warmup` + 1 more (ops_bench.median_ms
    syncs on CUDA), peak GPU memory and `count(fn())` in the note; a failure becomes a "could not
    run" row, so one amp setting failing leaves the others measured."""
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            fn()
        notes = [count(fn())] if count else []
        ms = ops_bench.median_ms(fn, runs)
        if device.type == "cuda":
            notes.append(f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        return (section, case, variant, ms, ", ".join(notes))
    except Exception as error:  # noqa: BLE001 - reported in the table
        return failure_row(section, error, f"{section} {variant}")


def check_train(runs: int, device: str = "cuda", amps=("off", "bf16", "fp16"), batch: int = 2,
                warmup: int = 2) -> list[Row]:
    """One SGD step of RECIPE per amp setting on `batch` synthetic images of model_bench.IMAGE_SIZE."""
    device = torch.device(device)
    model = model_bench.detrun_model(RECIPE, None, num_classes=80).to(device).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    inputs = []
    for seed in range(1, batch + 1):
        boxes, classes, masks = model_bench.ground_truth(seed)
        instances = Instances(model_bench.IMAGE_SIZE, gt_boxes=Boxes(boxes), gt_classes=classes - 1,
                              gt_masks=BitMasks(masks.bool()))
        inputs.append({"image": model_bench.image(seed), "instances": instances})
    h, w = model_bench.IMAGE_SIZE
    case = f"{RECIPE} training step, batch {batch} of {h}x{w}, 6 instances each"
    rows = []
    for amp in amps:
        dtype = autocast_dtype(amp, device)
        # As the trainer does: loss scaling only for fp16 (bf16 has fp32's exponent range).
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                losses = model(inputs)
            scaler.scale(sum(losses.values())).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        variant = "amp off (reference)" if amp == "off" else f"amp {amp}" + (" + GradScaler" if amp == "fp16" else "")
        rows.append(_measure("train", case, variant, step, runs, warmup, device))
    return rows


def check_inference(runs: int, device: str = "cuda", amps=("off", "bf16"), warmup: int = 2) -> list[Row]:
    """Latency of RECIPE on one image; weights randomized (model_bench.randomize_) so that boxes
    and masks are predicted, the count is in the note."""
    device = torch.device(device)
    model = model_bench.detrun_model(RECIPE, None, num_classes=80)
    model_bench.randomize_(model)
    model = model.to(device).eval()
    h, w = model_bench.IMAGE_SIZE
    inputs = [{"image": model_bench.image(), "height": h, "width": w}]
    rows = []
    for amp in amps:
        dtype = autocast_dtype(amp, device)

        def infer():
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                return model(inputs)

        variant = "amp off (reference)" if amp == "off" else f"amp {amp}"
        rows.append(_measure("inference", f"{RECIPE}, 1 image {h}x{w}", variant, infer, runs, warmup, device,
                             count=lambda out: f"{len(out[0]['instances'])} detections"))
    return rows


def section(name: str, runs: int) -> Callable[[], list[Row]]:
    """The full-size check of section `name` (one of SECTIONS)."""
    return {"tests": check_tests, "roi_align": lambda: check_roi_align(runs), "nms": lambda: check_nms(runs),
            "paste_masks": lambda: check_paste_masks(runs), "train": lambda: check_train(runs),
            "inference": lambda: check_inference(runs)}[name]


def failure_row(section: str, error: BaseException, what: str | None = None) -> Row:
    """The row "could not run <what, default section>: <error's first line>", also printed to
    stderr after the traceback of the error being handled."""
    reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    message = f"could not run {what or section}: {reason}"
    traceback.print_exc()
    print(message, file=sys.stderr, flush=True)
    return (section, message, "", None, "")


def render(rows: list[Row]) -> str:
    """The markdown table of rows; ratio = ms / ms of the "(reference)" row of the same section and case."""
    reference = {(s, c): ms for s, c, v, ms, _ in rows if v.endswith("(reference)") and ms}
    lines = ["| section | case | variant | ms | ratio | note |", "|---|---|---|---|---|---|"]
    for section, case, variant, ms, note in rows:
        ref = reference.get((section, case))
        ms_text = "" if ms is None else f"{ms:.2f}"
        ratio = f"{ms / ref:.2f}" if ms is not None and ref else ""
        cells = [section, case, variant, ms_text, ratio, note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # "|" in errors
    return "\n".join(lines) + "\n"


def header(runs: int) -> str:
    import torchvision

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    props = torch.cuda.get_device_properties(0)
    return (f"GPU check, {time.strftime('%Y-%m-%d %H:%M')}: {props.name} (sm_{props.major}{props.minor}, "
            f"{props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, triton {triton_version}, python {platform.python_version()}; "
            f"median of {runs} runs, ms.\n\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.md", help="markdown file written (default: gpu_check.md)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per case after warm-up; the median is reported (default 5)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these sections (default: all)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    text, rows = header(args.runs), []
    for name in args.sections:
        start = time.perf_counter()
        print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
        try:
            rows += section(name, args.runs)()
        except Exception as error:  # noqa: BLE001 - report and go on with the next section
            rows.append(failure_row(name, error))
        print(f"[gpu_check] {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        Path(args.out).write_text(text + render(rows))
    print(text + render(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
