"""Balanced positive/negative subsampling of matched anchors or proposals."""
from __future__ import annotations

import torch
from torch import Tensor


def subsample_labels(labels: Tensor, num_samples: int, positive_fraction: float, bg_label: int) -> tuple[Tensor, Tensor]:
    """Randomly pick at most `num_samples` elements, at most `positive_fraction` of them positive.

    If there are too few positives, negatives fill the remaining slots (Detectron2's and
    torchvision's rule); uses the global torch RNG.

    Args:
        labels: int Tensor[N]; -1 = ignore, `bg_label` = negative, anything else = positive.
        num_samples: total number of samples wanted.
        positive_fraction: upper bound of the positive share; negatives fill the rest.
        bg_label: the label value of negatives.

    Returns:
        (pos_idx, neg_idx): int64 index tensors into `labels`.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label)).squeeze(1)
    negative = torch.nonzero(labels == bg_label).squeeze(1)
    num_pos = min(int(num_samples * positive_fraction), positive.numel())
    num_neg = min(num_samples - num_pos, negative.numel())
    pos_idx = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
    neg_idx = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
    return pos_idx, neg_idx
