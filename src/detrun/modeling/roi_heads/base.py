"""ROIHeads base: the training-time labelling and sampling shared by every ROI head."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import ImageList, Instances

from ..matcher import Matcher


class ROIHeads(nn.Module):
    """Adds gt boxes to proposals, matches them to gt and samples a balanced batch in training.

    Args:
        num_classes: number of foreground classes C (background has label C).
        batch_size_per_image: proposals sampled per image for the losses (512).
        positive_fraction: upper bound of the foreground share of the samples (0.25).
        proposal_matcher: labels proposals against gt boxes (IoU 0.5, no low-quality matches).
        proposal_append_gt: add the gt boxes to the proposals in training.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ):
        super().__init__()
        raise NotImplementedError

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")
