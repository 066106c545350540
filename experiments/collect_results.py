"""Print a table of AP per run from a sweep directory's ``*/results.json``.

Usage: python experiments/collect_results.py multirun/DATE/TIME [KEY ...]

Without keys, each row starts with the run's overrides (from Hydra's ``.hydra/overrides.yaml``);
each KEY (a recipe key such as ``optimizer.lr`` or ``trainer.max_iter``) is a column instead,
holding the run's value from its resolved ``recipe.yaml`` ("–" where its recipe lacks the key).
Then box AP, box AP50 and mask AP, and PQ / mIoU when a run reported panoptic / semantic metrics.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from runs import read_results, recipe, recipe_overrides

ABSENT = "–"


def rows(sweep_dir: Path, keys: list[str]) -> list[tuple[list[str], dict]]:
    """(first cells, results) for every run under `sweep_dir` that wrote results.json, in job order.

    The first cells are the run's values of `keys`, or its overrides when `keys` is empty.
    """
    found = []
    for results in sorted(sweep_dir.glob("*/results.json"), key=lambda p: p.parent.name.zfill(6)):
        run_dir = results.parent
        if keys:
            cfg = recipe(run_dir)
            cells = [str(OmegaConf.select(cfg, key, default=ABSENT)) for key in keys]
        else:
            cells = [" ".join(recipe_overrides(run_dir)) or run_dir.name]
        found.append((cells, read_results(run_dir)))
    return found


# Columns shown when some run reported them: (header, task, metric).
EXTRA_COLUMNS = [("PQ", "panoptic_seg", "PQ"), ("mIoU", "sem_seg", "mIoU")]


def render(table: list[tuple[list[str], dict]], headers: list[str]) -> str:
    """The Markdown table: `headers` over the first cells, then box AP, box AP50 and mask AP (percent),
    then PQ and mIoU if any run has them."""
    widths = [max(len(h), *(len(cells[i]) for cells, _ in table)) for i, h in enumerate(headers)]
    extra = [c for c in EXTRA_COLUMNS if any(c[2] in result.get(c[1], {}) for _, result in table)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " | box AP | box AP50 | mask AP |"
             + "".join(f" {h:>5} |" for h, _, _ in extra),
             "|" + "|".join("-" * (w + 2) for w in widths) + "|-------:|---------:|--------:|"
             + "".join("-" * (max(len(h), 5) + 1) + ":|" for h, _, _ in extra)]
    for cells, result in table:
        box, segm = result.get("bbox", {}), result.get("segm", {})
        metrics = [_percent(box.get("AP"), 6), _percent(box.get("AP50"), 8), _percent(segm.get("AP"), 7)]
        metrics += [_percent(result.get(task, {}).get(key), max(len(h), 5)) for h, task, key in extra]
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " | " + " | ".join(metrics) + " |")
    return "\n".join(lines)


def _percent(value: float | None, width: int) -> str:
    return f"{float('nan') if value is None else value:{width}.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun directory (hydra.sweep.dir)")
    parser.add_argument("keys", nargs="*", help="recipe keys to show as columns (e.g. optimizer.lr trainer.max_iter)")
    args = parser.parse_args(argv)
    table = rows(args.sweep_dir, args.keys)
    if not table:
        raise SystemExit(f"no */results.json under {args.sweep_dir}")
    print(render(table, args.keys or ["run"]))


if __name__ == "__main__":
    main()
