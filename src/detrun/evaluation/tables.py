"""Plain-text tables of evaluation results (what the logs, the CLI and the run dir show)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown-style pipe table; floats print with 3 decimals and NaN as "-"."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    text = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in text) for i in range(len(header))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in text]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def summary_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One row per task (bbox, segm, keypoints) with its AP, AP50, AP75, APs, APm, APl."""
    columns = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    rows = [[task, *(metrics.get(c, math.nan) for c in columns)] for task, metrics in results.items()]
    return format_table(["task", *columns], rows)


def per_category_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One row per category, one AP column per task."""
    tasks = list(results)
    names = list(dict.fromkeys(k[3:] for m in results.values() for k in m if k.startswith("AP-")))
    rows = [[name, *(results[t].get(f"AP-{name}", math.nan) for t in tasks)] for name in names]
    return format_table(["category", *(f"{t} AP" for t in tasks)], rows)
