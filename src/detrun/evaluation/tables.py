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


AP_COLUMNS = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
FREQUENCY_AP_COLUMNS = ["APr", "APc", "APf"]  # LVIS: AP of rare, common, frequent classes
# Per-category keys: "<prefix>-<category name>" (COCO AP, semantic IoU / accuracy, panoptic PQ).
PER_CATEGORY_PREFIXES = ("AP", "IoU", "ACC", "PQ")


def summary_columns(metrics: Mapping[str, float]) -> list[str]:
    """The overall metrics of one task, in their order: COCO AP's six for tasks with "AP" (and
    LVIS's APr, APc, APf when reported), otherwise every key that is not per category (mIoU,
    fwIoU, mACC, pACC; PQ, SQ, RQ, ...)."""
    if "AP" in metrics:
        return AP_COLUMNS + [c for c in FREQUENCY_AP_COLUMNS if c in metrics]
    return [k for k in metrics if k.split("-", 1)[0] not in PER_CATEGORY_PREFIXES or "-" not in k]


def summary_groups(results: Mapping[str, Mapping[str, float]]) -> list[tuple[list[str], list[str]]]:
    """(columns, tasks) of tasks sharing their summary columns, in first-seen order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for task, metrics in results.items():
        groups.setdefault(tuple(summary_columns(metrics)), []).append(task)
    return [(list(columns), tasks) for columns, tasks in groups.items()]


def summary_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One row per task with its overall metrics: AP, AP50, AP75, APs, APm, APl for the COCO
    tasks (bbox, segm, keypoints); tasks with other metrics (sem_seg: mIoU...; panoptic_seg:
    PQ...) get a table of their own columns below."""
    tables = []
    for columns, tasks in summary_groups(results) or [(AP_COLUMNS, [])]:
        rows = [[task, *(results[task].get(c, math.nan) for c in columns)] for task in tasks]
        tables.append(format_table(["task", *columns], rows))
    return "\n\n".join(tables)


def per_category_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One row per category, one column per task and per-category metric ("bbox AP", "sem_seg IoU", ...)."""
    columns = []  # (task, prefix)
    names: dict[str, None] = {}
    for task, metrics in results.items():
        for key in metrics:
            prefix, _, name = key.partition("-")
            if name and prefix in PER_CATEGORY_PREFIXES:
                if (task, prefix) not in columns:
                    columns.append((task, prefix))
                names[name] = None
    rows = [[name, *(results[t].get(f"{p}-{name}", math.nan) for t, p in columns)] for name in names]
    return format_table(["category", *(f"{t} {p}" for t, p in columns)], rows)
