"""Print a table of AP per run from a sweep directory's ``*/results.json``.

Usage: python experiments/collect_results.py multirun/DATE/TIME [key ...]

Each row shows the run's overrides (from Hydra's ``.hydra/overrides.yaml``), box AP and mask AP.
"""
from __future__ import annotations

import sys
from pathlib import Path

from runs import read_results, recipe_overrides


def rows(sweep_dir: Path) -> list[tuple[str, dict]]:
    """(overrides, results) for every run under `sweep_dir` that wrote results.json."""
    found = []
    for results in sorted(sweep_dir.glob("*/results.json"), key=lambda p: p.parent.name.zfill(6)):
        shown = " ".join(recipe_overrides(results.parent))
        found.append((shown or results.parent.name, read_results(results.parent)))
    return found


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    table = rows(Path(sys.argv[1]))
    if not table:
        sys.exit(f"no */results.json under {sys.argv[1]}")
    width = max(len(name) for name, _ in table)
    print(f"| {'run'.ljust(width)} | box AP | box AP50 | mask AP |")
    print(f"|{'-' * (width + 2)}|-------:|---------:|--------:|")
    for name, result in table:
        box, segm = result.get("bbox", {}), result.get("segm", {})
        print(f"| {name.ljust(width)} | {box.get('AP', float('nan')):6.1f} | {box.get('AP50', float('nan')):8.1f} "
              f"| {segm.get('AP', float('nan')):7.1f} |")


if __name__ == "__main__":
    main()
