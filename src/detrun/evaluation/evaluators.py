"""Several evaluators as one, and building the recipe's ``evaluator`` node (one node or a list)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from detrun.config import instantiate


class DatasetEvaluators:
    """Runs every evaluator on the same predictions; ``evaluate()`` merges their
    ``{task: {metric: value}}`` results (two evaluators reporting one task is an error)."""

    def __init__(self, evaluators: Sequence[Any]):
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self.evaluators:
            evaluator.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for evaluator in self.evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> dict[str, dict[str, float]]:
        results: dict[str, dict[str, float]] = {}
        for evaluator in self.evaluators:  # every rank calls every evaluate(): they gather
            for task, metrics in (evaluator.evaluate() or {}).items():
                if task in results:
                    raise ValueError(f"two evaluators report task {task!r}; give each task one evaluator")
                results[task] = metrics
        return results


def build_evaluator(node: DictConfig | ListConfig, **kwargs: Any) -> Any:
    """Instantiate a recipe's ``evaluator``: one node, or a list of nodes (each gets `kwargs`,
    e.g. ``output_dir``) combined into `DatasetEvaluators`."""
    if isinstance(node, (ListConfig, list)):
        return DatasetEvaluators([instantiate(n, **kwargs) for n in node])
    return instantiate(node, **kwargs)


def evaluator_dataset_name(cfg: DictConfig) -> str | None:
    """The data set the recipe evaluates on: ``evaluator.dataset_name``, or the first one of a
    list of evaluators (None if no evaluator names one)."""
    node = OmegaConf.select(cfg, "evaluator")
    nodes = list(node) if isinstance(node, ListConfig) else [node]
    for n in nodes:
        if isinstance(n, DictConfig) and n.get("dataset_name"):
            return n.dataset_name
    return None
