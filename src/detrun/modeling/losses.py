"""Classification losses shared by heads (box regression losses live in `box_regression`)."""
from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, *, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Summed focal loss of independent sigmoid classifiers (Lin et al. 2017, RetinaNet).

    ``FL = -alpha_t * (1 - p_t) ** gamma * log(p_t)`` per element, where p_t is the predicted
    probability of the target value; down-weights the many easy negatives of dense detectors.

    Args:
        logits: float Tensor[..., K], one logit per class.
        targets: Tensor of the same shape, 1 for the true class and 0 elsewhere.
        alpha: weight of positives (1 - alpha for negatives); negative disables weighting.
        gamma: focusing exponent; 0 gives (weighted) binary cross-entropy.

    Returns:
        Scalar tensor, the sum over all elements (the caller normalises).
    """
    logits = logits.float()
    targets = targets.to(logits.dtype)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum()
