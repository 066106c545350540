"""Balanced positive/negative subsampling of matched anchors or proposals."""
from __future__ import annotations

import torch


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly pick at most `num_samples` elements, at most `positive_fraction` of them positive.

    Args:
        labels: int Tensor[N]; -1 = ignore, `bg_label` = negative, anything else = positive.
        num_samples: total number of samples wanted.
        positive_fraction: upper bound of the positive share; negatives fill the rest.
        bg_label: the label value of negatives.

    Returns:
        (pos_idx, neg_idx): int64 index tensors into `labels`.
    """
    raise NotImplementedError
