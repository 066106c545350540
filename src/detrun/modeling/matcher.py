"""Matcher: assign each prediction (anchor / proposal) to a ground-truth box by IoU."""
from __future__ import annotations

import torch


class Matcher:
    """Label each prediction by its best IoU against the ground truth.

    Thresholds split IoU into intervals; `labels` gives the label of each interval, e.g.
    ``thresholds=[0.3, 0.7], labels=[0, -1, 1]``: IoU < 0.3 -> 0 (negative), [0.3, 0.7) -> -1
    (ignored), >= 0.7 -> 1 (positive). This is Detectron2's and torchvision's rule.

    Args:
        thresholds: increasing IoU thresholds, without the implied -inf/+inf ends.
        labels: one label per interval (``len(thresholds) + 1``), each in {-1, 0, 1}.
        allow_low_quality_matches: also mark as positive, for every ground-truth box, the
            predictions that reach its highest IoU (ties included), even below the positive
            threshold; Faster R-CNN's RPN rule so that every gt gets at least one anchor.
    """

    def __init__(self, *, thresholds: list[float], labels: list[int], allow_low_quality_matches: bool = False):
        if len(labels) != len(thresholds) + 1:
            raise ValueError(f"Matcher needs len(labels) == len(thresholds) + 1, got {labels} and {thresholds}")
        if any(a > b for a, b in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds}")
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must be in {{-1, 0, 1}}, got {labels}")
        self.thresholds = [float(t) for t in thresholds]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Match predictions to ground truth.

        Args:
            match_quality_matrix: float Tensor[G, P], IoU of each of G gt boxes with each of P predictions.

        Returns:
            matches: int64 Tensor[P], index of the matched gt box for each prediction (0 if G == 0).
            match_labels: int8 Tensor[P], the interval label (-1 ignore, 0 negative, 1 positive).
        """
        raise NotImplementedError
