"""AP and latency of trained runs evaluated in several inference precisions (issue 17).

For each run directory (its saved ``recipe.yaml`` and ``model_final.pth``), the model is scored
on the recipe's test set (``dataloader.test``, e.g. ``shapes_val``) with the recipe's evaluator
once per ``--amp`` value, exactly as ``task=eval trainer.inference_amp=AMP`` would, and one
markdown row per (run, precision) gives every task's AP, the change from the first precision and
the seconds per image (wall, the whole pass including data loading and evaluator processing).

    python benchmarks/precision_ap.py outputs/zoo/shapes_cascade_mask_rcnn --amp off bf16
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from detrun.config import compose, instantiate
from detrun.evaluation import inference_on_dataset


def evaluate(run_dir: Path, amp: str) -> tuple[dict, float]:
    """(results, s/image) of `run_dir`'s final weights under inference precision `amp`."""
    cfg = compose(str(run_dir / "recipe.yaml"), overrides=[f"model.weights={run_dir / 'model_final.pth'}"])
    model = instantiate(cfg.model)
    loader = instantiate(cfg.dataloader.test)
    with tempfile.TemporaryDirectory() as out:
        evaluator = instantiate(cfg.evaluator, output_dir=out)
        start = time.perf_counter()
        results = inference_on_dataset(model, loader, evaluator, amp=amp)
        seconds = time.perf_counter() - start
    return results, seconds / len(loader.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories with recipe.yaml and model_final.pth")
    parser.add_argument("--amp", nargs="+", default=["off", "bf16"],
                        help="inference precisions (trainer.inference_amp values); deltas are against the first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16 (oneDNN) {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print("\n| run | amp | task | AP | change | AP50 | AP75 | s/image |")
    print("|---|---|---|---|---|---|---|---|")
    for run_dir in args.run_dirs:
        first = None
        for amp in args.amp:
            results, per_image = evaluate(run_dir, amp)
            first = first or results
            for task, metrics in results.items():
                change = metrics["AP"] - first[task]["AP"]
                print(f"| {run_dir.name} | {amp} | {task} | {metrics['AP']:.2f} | {change:+.2f} | "
                      f"{metrics['AP50']:.2f} | {metrics['AP75']:.2f} | {per_image:.3f} |", flush=True)


if __name__ == "__main__":
    main()
