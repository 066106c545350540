"""Training curves from ``metrics.jsonl``: losses, learning rate and evaluation AP over iterations."""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger(__name__)


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Series ``{key: [(iteration, value), ...]}`` from a JSON-lines metrics file.

    Lines are JSON objects with an ``iteration`` and any numeric keys. Lines without an
    iteration, non-numeric values and an unfinished last line (a run killed mid-write) are
    skipped.
    """
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("iteration"), (int, float)):
            continue
        for key, value in entry.items():
            if key != "iteration" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                series[key].append((int(entry["iteration"]), float(value)))
    return dict(series)


def _panels(series: dict[str, list]) -> list[tuple[str, list[str], bool]]:
    """(title, keys, log y-axis) of each non-empty panel."""
    losses = sorted(k for k in series if k == "total_loss" or k.startswith("loss_"))
    ap = sorted(k for k in series if k.endswith("/AP"))  # "bbox/AP", "segm/AP", "keypoints/AP"
    segmentation = sorted(k for k in series if k.endswith(("/PQ", "/mIoU")))  # "panoptic_seg/PQ", "sem_seg/mIoU"
    panels = [("losses", losses, True), ("learning rate", ["lr"] if "lr" in series else [], False),
              ("evaluation AP (%)", ap, False), ("evaluation PQ / mIoU (%)", segmentation, False)]
    return [p for p in panels if p[1]]


def plot_training_curves(metrics_file: Path, out_file: Path) -> Path | None:
    """Plot `metrics_file` (see `read_metrics`) to the PNG `out_file`: one panel each for losses
    (log scale), lr and the evaluation APs, skipping panels without data.

    Returns `out_file`, or None (with a warning) when the file is missing or holds nothing to plot.
    """
    metrics_file = Path(metrics_file)
    if not metrics_file.is_file():
        logger.warning("No training curves: %s does not exist", metrics_file)
        return None
    series = read_metrics(metrics_file)
    panels = _panels(series)
    if not panels:
        logger.warning("No training curves: %s has no losses, lr or AP entries", metrics_file)
        return None
    # The object-oriented API with the Agg canvas: no pyplot global state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(panels), 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    for ax, (title, keys, log_scale) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for key in keys:
            iterations, values = zip(*series[key])
            ax.plot(iterations, values, label=key, marker="o" if len(values) < 20 else None,
                    linewidth=2 if key == "total_loss" else 1)
        if log_scale and all(v > 0 for key in keys for _, v in series[key]):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize="small")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file)
    return out_file
