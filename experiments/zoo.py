"""Write the shapes model zoo table (experiments/zoo.md) from training run directories.

Usage: python experiments/zoo.py RUN_DIR [RUN_DIR ...] [--out experiments/zoo.md] [--no-timing] [--images N]

Each RUN_DIR is what ``python -m detrun recipe=NAME ...`` wrote: ``recipe.yaml``, ``results.json``,
``metrics.jsonl``, ``model_final.pth`` and Hydra's ``.hydra/overrides.yaml`` (the recipe name and
overrides). One row per recipe: a run replaces the row of its recipe; rows of other recipes stay.
Without RUN_DIRs the table is rewritten as it is (new header, same rows).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from detrun.checkpoint import load_weights
from detrun.config import get_recipe, instantiate, list_recipes, load, locate
from detrun.data import shapes_dataset, shapes_panoptic_dataset
from detrun.engine.train import FINAL_WEIGHTS
from detrun.utils.events import METRICS_FILE

from runs import read_results, recipe_name, recipe_overrides

ZOO = Path(__file__).with_name("zoo.md")
LEADING = ["recipe", "architecture", "command", "train time"]
TRAILING = ["params", "CPU ms/image"]
# Headline metric of each evaluation task (results.json keys), and the order of their columns.
HEADLINES = {"bbox": "AP", "segm": "AP", "keypoints": "AP", "panoptic_seg": "PQ", "sem_seg": "mIoU"}
ABSENT = "–"
# Hand-written notes (how the rows were run) follow this heading; regenerating the table keeps them.
NOTES_HEADING = "## Run conditions"
WARMUP_IMAGES = 2  # first calls allocate buffers and pick kernels: not timed

HEADER = """# Model zoo: the shapes recipes

Every recipe that trains on the synthetic shapes set, trained with its own settings on this project's
2-core CPU machine and evaluated on `shapes_val` (pycocotools-equivalent AP@[.5:.95] and the like,
in percent; one column per task the run's evaluators reported, {absent} where a recipe has none).
The table is written by `experiments/zoo.py`, never by hand:

```bash
python -m detrun recipe=NAME hydra.run.dir=outputs/zoo/NAME      # each shapes recipe, one at a time
python experiments/zoo.py outputs/zoo/*                          # then, on an otherwise idle machine
```

- **command**: what trained the run (its recipe and overrides).
- **train time**: the training loop's wall time, from `metrics.jsonl`: the sum over its rows of the
  mean seconds per iteration (`time`) times the iterations since the previous row. It counts every
  optimizer step with its data loading, periodic checkpoints and evaluations; not data set
  generation, model building or the final evaluation.
- **params**: all parameters of the recipe's model, trainable or not.
- **CPU ms/image**: median wall time of `model([image])` in eval mode under `torch.no_grad()`, with
  2 threads, over {images} images of `dataloader.test` (after {warmup} untimed ones), weights from
  `model_final.pth`, postprocessing included.
"""


def train_minutes(run_dir: Path) -> float:
    """The training loop's wall time in minutes: Σ ``time`` (s/iter, mean since the previous row)
    × iterations since the previous row, over the rows of ``metrics.jsonl`` that have it."""
    seconds, previous = 0.0, 0
    for line in (run_dir / METRICS_FILE).read_text().splitlines():
        row = json.loads(line)
        if "time" in row:  # evaluation rows have no timing
            seconds += row["time"] * (row["iteration"] - previous)
            previous = row["iteration"]
    return seconds / 60


def metric_cells(results: dict[str, dict[str, float | None]]) -> dict[str, str]:
    """``{"bbox": {"AP": 80.04, ...}}`` -> ``{"bbox AP": "80.0"}``: each task's headline metric
    (`HEADLINES`; the task's first metric for a task it doesn't know)."""
    cells = {}
    for task, metrics in results.items():
        name = HEADLINES.get(task, next(iter(metrics)))
        value = metrics.get(name)
        cells[f"{task} {name}"] = ABSENT if value is None else f"{value:.1f}"
    return cells


def inference_ms(model: torch.nn.Module, cfg: DictConfig, images: int) -> float:
    """Median milliseconds per image of `model` in eval mode over the first `images` inputs of the
    recipe's test loader (after `WARMUP_IMAGES`), with 2 intra-op threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for inputs in instantiate(cfg.dataloader.test):
                start = time.perf_counter()
                model(inputs)
                times.append((time.perf_counter() - start) * 1000 / len(inputs))
                if len(times) == WARMUP_IMAGES + images:
                    break
    finally:
        torch.set_num_threads(threads)
    if len(times) <= WARMUP_IMAGES:
        raise SystemExit(f"the test set has only {len(times)} images: time at least {WARMUP_IMAGES + 1}")
    return statistics.median(times[WARMUP_IMAGES:])


def zoo_row(run_dir: Path, images: int | None) -> dict[str, str]:
    """The table row of one run directory; `images` None: no inference timing."""
    cfg = load(run_dir / "recipe.yaml")
    name = recipe_name(run_dir)
    cfg.model.weights = None  # the weights the run started from (ImageNet...): not needed, maybe not on this machine
    model = instantiate(cfg.model)
    ms = ABSENT
    if images is not None:
        weights = run_dir / FINAL_WEIGHTS
        if not weights.is_file():
            raise SystemExit(f"{weights} does not exist: time a finished run, or pass --no-timing")
        load_weights(model, weights, strict=True, verbose=False)
        ms = f"{inference_ms(model, cfg, images):.0f}"
    return {
        "recipe": name,
        "architecture": cfg.model._target_.rsplit(".", 1)[-1],
        "command": "`" + " ".join(["python -m detrun", f"recipe={name}", *recipe_overrides(run_dir)]) + "`",
        "train time": f"{train_minutes(run_dir):.1f} min",
        **metric_cells(read_results(run_dir)),
        "params": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        "CPU ms/image": ms,
    }


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of the markdown table in `path` as {column: cell} ([] when there is no file)."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    if not lines:
        return []
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    header = cells[0]
    return [dict(zip(header, row)) for row in cells[2:]]  # cells[1] is the |---| line


def read_notes(path: Path) -> str:
    """The hand-written section of `path` from `NOTES_HEADING` to the end ("" when there is none)."""
    text = path.read_text() if path.is_file() else ""
    start = text.find(NOTES_HEADING)
    return text[start:] if start >= 0 else ""


def shapes_recipes() -> list[str]:
    """Built-in recipes whose training set is a shapes set (plain or panoptic)."""
    return [name for name in list_recipes()
            if locate(get_recipe(name).dataloader.train.dataset._target_) in (shapes_dataset, shapes_panoptic_dataset)]


def render(rows: list[dict[str, str]], images: int, notes: str = "") -> str:
    """zoo.md: the header, the rows sorted by recipe, metric columns for every task any row has,
    a note naming the shapes recipes without a row, then the hand-written `notes`."""
    fixed = LEADING + TRAILING
    metrics = {column for row in rows for column in row if column not in fixed}
    order = list(HEADLINES)
    metrics = sorted(metrics, key=lambda c: (order.index(c.split()[0]) if c.split()[0] in order else len(order), c))
    columns = LEADING + metrics + TRAILING
    left = {"recipe", "architecture", "command"}
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if c in left else "---:" for c in columns) + "|"]
    for row in sorted(rows, key=lambda r: r["recipe"]):
        lines.append("| " + " | ".join(row.get(c, ABSENT) for c in columns) + " |")
    missing = sorted(set(shapes_recipes()) - {row["recipe"] for row in rows})
    note = f"\nShapes recipes without a row yet: {', '.join(missing)}.\n" if missing else ""
    table = HEADER.format(absent=ABSENT, images=images, warmup=WARMUP_IMAGES) + "\n" + "\n".join(lines) + "\n" + note
    return table + ("\n" + notes if notes else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, help="training run directories")
    parser.add_argument("--out", type=Path, default=ZOO, help="the table to update (default: %(default)s)")
    parser.add_argument("--no-timing", action="store_true", help="leave CPU ms/image empty (no weights needed)")
    parser.add_argument("--images", type=int, default=20, help="images timed per model (default: %(default)s)")
    args = parser.parse_args(argv)
    rows = {row["recipe"]: row for row in read_table(args.out)}
    for run_dir in args.run_dirs:
        row = zoo_row(run_dir, None if args.no_timing else args.images)
        rows[row["recipe"]] = row
        print(" | ".join(row.values()))
    args.out.write_text(render(list(rows.values()), args.images, read_notes(args.out)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
