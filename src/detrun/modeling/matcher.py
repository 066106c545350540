"""Matcher: assign each prediction (anchor / proposal) to a ground-truth box by IoU."""
from __future__ import annotations

import math

import torch
from torch import Tensor


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
            Such a prediction keeps its best-IoU gt as match (as in both libraries). Unlike
            them, a gt whose best IoU is 0 makes no low-quality match.
    """

    def __init__(self, *, thresholds: list[float], labels: list[int], allow_low_quality_matches: bool = False):
        if len(labels) != len(thresholds) + 1:
            raise ValueError(f"Matcher needs len(labels) == len(thresholds) + 1, got {labels} and {thresholds}")
        if any(a > b for a, b in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds}")
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must be in {{-1, 0, 1}}, got {labels}")
        self.thresholds = [-math.inf] + [float(t) for t in thresholds] + [math.inf]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> tuple[Tensor, Tensor]:
        """Match predictions to ground truth.

        Args:
            match_quality_matrix: float Tensor[G, P], IoU of each of G gt boxes with each of P predictions.

        Returns:
            matches: int64 Tensor[P], index of the matched gt box for each prediction (0 if G == 0).
            match_labels: int8 Tensor[P], the interval label (-1 ignore, 0 negative, 1 positive);
                with no gt every prediction gets the lowest interval's label.
        """
        num_gt, num_pred = match_quality_matrix.shape
        device = match_quality_matrix.device
        if num_gt == 0 or num_pred == 0:
            matches = torch.zeros(num_pred, dtype=torch.int64, device=device)
            match_labels = torch.full((num_pred,), self.labels[0], dtype=torch.int8, device=device)
            return matches, match_labels

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = torch.ones(num_pred, dtype=torch.int8, device=device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            match_labels.masked_fill_((matched_vals >= low) & (matched_vals < high), label)

        if self.allow_low_quality_matches:
            best_per_gt = match_quality_matrix.max(dim=1, keepdim=True).values
            # A gt overlapping nothing (e.g. a zero-area box) would otherwise make every
            # prediction positive, regressing towards a box it can't reach.
            reaches_best = ((match_quality_matrix == best_per_gt) & (best_per_gt > 0)).any(dim=0)
            match_labels.masked_fill_(reaches_best, 1)
        return matches, match_labels
