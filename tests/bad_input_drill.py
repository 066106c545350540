"""A drill of bad inputs, tried as a user would: each must end in one line naming the key, file
or value (exit 2, no traceback), or give the right result; never a silent wrong one.

    .venv/bin/python tests/bad_input_drill.py            # every case as `python -m detrun ...`: a table
    .venv/bin/python -m pytest tests/test_bad_input_drill.py   # the same cases, in-process

The cases reuse the unit tests' helpers (the 4 TiB pickle, the toy recipe, the predict setup).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).parent
for folder in ("checkpoint", "evaluation", "config"):  # the unit tests' helper modules
    sys.path.insert(0, str(TESTS / folder))

TOY = str(TESTS / "config" / "recipes" / "toy.py")
SHAPES = "recipe=shapes_mask_rcnn"
# Tiny generated COCO-format set the data cases break (see `coco_set`).
TINY = dict(num_images=2, seed=0, image_size=64, min_objects=1, max_objects=2, min_size=12, max_size=30,
            occlusion_prob=0.0, max_occluded_fraction=0.4)
DATA_RECIPE = """from detrun.data import register_coco_instances
from detrun.recipes.shapes_mask_rcnn import dataloader, evaluator, lr_scheduler, model, optimizer, trainer

register_coco_instances({name!r}, {json!r}, {images!r})
"""


@dataclass
class Outcome:
    code: int | None  # exit status; None: a library call, judged by its result
    message: str  # the error line, or what the result was
    ok: bool


@dataclass
class Case:
    """`setup(folder)` prepares files in an empty folder and returns the command line's arguments;
    the error line must hold every needle (formatted with ``folder``)."""

    name: str
    setup: Callable[[Path], list[str]]
    needles: tuple[str, ...]


@dataclass
class ResultCase:
    """`check(folder)` runs detrun's library and returns (right?, what came out)."""

    name: str
    check: Callable[[Path], tuple[bool, str]]


def coco_set(folder: Path) -> tuple[Path, Path]:
    """A 2-image COCO-format set copied into `folder`: (annotation file, image folder)."""
    from detrun.data.datasets.shapes import _params, ensure_shapes

    source = ensure_shapes(_params(**TINY), folder / "generated")
    shutil.copytree(source.parent, folder / "set")
    data = json.loads((folder / "set" / source.name).read_text())
    first = Path(data["images"][0]["file_name"])
    return folder / "set" / source.name, (folder / "set" / first).parent if not first.is_absolute() else first.parent


def data_recipe(folder: Path, name: str, json_file: Path, images: Path) -> list[str]:
    """The arguments of ``task=check_data`` on the set registered as `name` by a recipe file."""
    (folder / "drill_data.py").write_text(DATA_RECIPE.format(name=name, json=str(json_file), images=str(images)))
    return [f"recipe={folder / 'drill_data.py'}", "task=check_data", f"dataset={name}", f"hydra.run.dir={folder}/run"]


def corrupt_image(folder: Path) -> list[str]:
    json_file, images = coco_set(folder)
    name = json.loads(json_file.read_text())["images"][0]["file_name"]
    (images / Path(name).name).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return data_recipe(folder, "drill_corrupt", json_file, images)


def malformed_json(folder: Path) -> list[str]:
    json_file, images = coco_set(folder)
    json_file.write_text('{"images": [{"id": 1,')
    return data_recipe(folder, "drill_malformed", json_file, images)


def huge_pkl(folder: Path) -> list[str]:
    from test_reading import HugeArray

    (folder / "huge.pkl").write_bytes(pickle.dumps({"model": {"w": HugeArray("reconstruct")}}, protocol=2))
    return [SHAPES, "task=eval", f"model.weights={folder}/huge.pkl", f"hydra.run.dir={folder}/run"]


def run_dir_with_a_run(folder: Path) -> list[str]:
    (folder / "run").mkdir()
    (folder / "run" / "metrics.jsonl").write_text("")
    return [SHAPES, f"hydra.run.dir={folder}/run"]


def make_read_only(path: Path) -> Callable[[], None]:
    """Make folder `path` read-only, also for root (who ignores permissions: the immutable
    attribute instead); returns the function that undoes it."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def read_only_run_dir(folder: Path) -> list[str]:
    (folder / "run").mkdir()
    _UNDO.append(make_read_only(folder / "run"))
    return [SHAPES, f"hydra.run.dir={folder}/run"]


_UNDO: list[Callable[[], None]] = []  # read-only folders to make writable again after their case


def sixteen_bit_png(folder: Path) -> tuple[bool, str]:
    from detrun.data import read_image

    values = np.full((8, 8), 112 * 257, dtype=np.uint16)  # 16-bit grey whose 8-bit value is 112
    Image.frombytes("I;16", (8, 8), values.astype("<u2").tobytes()).save(folder / "grey16.png")
    mean = float(read_image(str(folder / "grey16.png")).mean())
    return mean == 112.0, f"decoded mean {mean:g} (expected 112)"


def predict_into_the_input_folder(folder: Path) -> tuple[bool, str]:
    from evaltest_data import CenterBoxModel
    from test_eval_tasks import make_cfg

    from detrun.config import L, instantiate
    from detrun.evaluation.tasks import run_predict

    cfg = make_cfg(str(folder / "shapes"), L(CenterBoxModel)())
    image = instantiate(cfg.dataloader.test.dataset)[0]["file_name"]
    (folder / "in").mkdir()
    Image.open(image).convert("RGB").save(folder / "in" / "a.jpg")
    shutil.copy(image, folder / "in" / "a.png")
    before = {p.name: p.read_bytes() for p in (folder / "in").iterdir()}
    cfg.input = cfg.output = str(folder / "in")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_predict(cfg, folder / "in")
    kept = all((folder / "in" / name).read_bytes() == data for name, data in before.items())
    return kept, "inputs a.jpg, a.png unchanged" if kept else "an input file was overwritten"


CASES = [
    Case("wrong recipe name", lambda f: ["recipe=shapes_mask_rcn"], ("unknown recipe 'shapes_mask_rcn'",)),
    Case("unknown config key", lambda f: [SHAPES, "trainer.max_iters=5"], ("trainer.max_iters",)),
    Case("trainer.max_iter=abc", lambda f: [SHAPES, "trainer.max_iter=abc"], ("trainer.max_iter", "'abc'")),
    Case("optimizer.lr=abc", lambda f: [SHAPES, "optimizer.lr=abc"], ("optimizer.lr", "'abc'")),
    Case("trainer.log_period=abc", lambda f: [SHAPES, "trainer.log_period=abc"], ("trainer.log_period", "'abc'")),
    Case("trainer.max_iter=1.5", lambda f: [SHAPES, "trainer.max_iter=1.5"], ("trainer.max_iter", "1.5")),
    Case("interpolation error", lambda f: [f"recipe={TOY}", "task=print_config", "~model.in_features",
                                           f"hydra.run.dir={f}/run"], ("model.out_features", "in_features")),
    Case("missing weights file", lambda f: [SHAPES, "task=eval", f"model.weights={f}/nope.pth", f"hydra.run.dir={f}/run"],
         ("{folder}/nope.pth",)),
    Case("weights = a directory", lambda f: [SHAPES, "task=eval", f"model.weights={f}", f"hydra.run.dir={f}/run"],
         ("{folder}", "directory")),
    Case("weights = a URL", lambda f: [SHAPES, "task=eval", "model.weights=https://example.com/w.pth",
                                       f"hydra.run.dir={f}/run"], ("https://example.com/w.pth", "URL")),
    Case(".pkl asking for 4 TiB", huge_pkl, ("{folder}/huge.pkl", "(4398046511104,)")),
    Case("corrupt image", corrupt_image, ("drill_corrupt", "problems")),
    Case("malformed annotation JSON", malformed_json, ("annotations.json", "not valid JSON")),
    Case("non-empty run dir", run_dir_with_a_run, ("{folder}/run", "already holds a run", "trainer.resume=true")),
    Case("total batch % processes != 0", lambda f: [SHAPES, "dataloader.train.total_batch_size=3",
                                                   "trainer.num_processes=2", f"hydra.run.dir={f}/run"],
         ("total_batch_size=3", "multiple of 2")),
    Case("read-only run dir", read_only_run_dir, ("{folder}/run", "read-only")),
]
RESULT_CASES = [
    ResultCase("16-bit PNG decodes right", sixteen_bit_png),
    ResultCase("predict into the input folder", predict_into_the_input_folder),
]


def run_in_process(argv: list[str]) -> tuple[int, str]:
    """``python -m detrun *argv`` in this process: (exit status, stderr)."""
    from detrun.cli.main import main

    stderr, handlers, saved_argv = io.StringIO(), list(logging.getLogger().handlers), sys.argv
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved_argv
        for handler in set(logging.getLogger().handlers) - set(handlers):  # Hydra's, into the run dir
            logging.getLogger().removeHandler(handler)
            handler.close()
    return code, stderr.getvalue()


def run_subprocess(argv: list[str], folder: Path) -> tuple[int, str]:
    """``python -m detrun *argv`` as its own process, outside any torchrun/SLURM job: (exit status, stderr)."""
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS",
                "HYDRA_FULL_ERROR")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.setdefault("DETRUN_DATASETS", str(folder / "datasets"))
    proc = subprocess.run([sys.executable, "-m", "detrun", *argv], capture_output=True, text=True, cwd=folder,
                          env=env, timeout=600)
    return proc.returncode, proc.stderr


def judge(case: Case, folder: Path, code: int, stderr: str) -> Outcome:
    """Exit 2, one ``error:`` line on stderr holding every needle, no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    message = errors[-1] if errors else (stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
    needles = [n.format(folder=folder) for n in case.needles]
    ok = code == 2 and len(errors) == 1 and "Traceback" not in stderr and all(n in message for n in needles)
    return Outcome(code, message, ok)


def run_case(case: Case | ResultCase, folder: Path, *, in_process: bool) -> Outcome:
    """Run one case in the empty folder `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(case, ResultCase):
            ok, what = case.check(folder)
            return Outcome(None, what, ok)
        argv = case.setup(folder)
        code, stderr = run_in_process(argv) if in_process else run_subprocess(argv, folder)
        return judge(case, folder, code, stderr)
    finally:
        while _UNDO:
            _UNDO.pop()()


def main() -> int:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="detrun-drill-") as root:
        for i, case in enumerate(CASES + RESULT_CASES):
            outcome = run_case(case, Path(root) / f"case{i}", in_process=False)
            rows.append((case.name, "-" if outcome.code is None else str(outcome.code), outcome.message,
                         "ok" if outcome.ok else "FAIL"))
    widths = [max(len(r[i]) for r in rows + [("case", "exit", "", "verdict")]) for i in (0, 1)]
    print(f"{'case':<{widths[0]}} | {'exit':<{widths[1]}} | verdict | message")
    for name, code, message, verdict in rows:
        print(f"{name:<{widths[0]}} | {code:<{widths[1]}} | {verdict:<7} | {message}")
    failed = sum(r[3] != "ok" for r in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} cases ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
