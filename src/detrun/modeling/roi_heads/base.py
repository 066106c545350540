"""ROIHeads base: the training-time labelling and sampling shared by every ROI head."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.structures import ImageList, Instances, pairwise_iou

from ..matcher import Matcher
from ..proposal_generator.proposal_utils import add_ground_truth_to_proposals
from ..sampling import subsample_labels


def select_foreground_proposals(proposals: list[Instances], bg_label: int) -> list[Instances]:
    """Per image, the proposals whose `gt_classes` is a foreground class (not -1, not `bg_label`)."""
    return [p[(p.gt_classes != -1) & (p.gt_classes != bg_label)] for p in proposals]


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
        self.num_classes = num_classes
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: list[Instances], targets: list[Instances]) -> list[Instances]:
        """Sample `batch_size_per_image` proposals per image and attach their training targets.

        Args:
            proposals: per image, Instances with `proposal_boxes` and `objectness_logits`.
            targets: per image, gt Instances with `gt_boxes`, `gt_classes` and other `gt_*` fields.

        Returns:
            Per image, the sampled proposals with `gt_classes` (C = background) and, when the
            image has gt, every `gt_*` field of the matched gt object (e.g. `gt_boxes`, `gt_masks`).
        """
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals(targets, proposals)
        sampled = []
        for props, gt in zip(proposals, targets):
            matched_idxs, matched_labels = self.proposal_matcher(pairwise_iou(gt.gt_boxes, props.proposal_boxes))
            if len(gt) > 0:
                gt_classes = gt.gt_classes[matched_idxs]
                gt_classes[matched_labels == 0] = self.num_classes
                gt_classes[matched_labels == -1] = -1
            else:
                gt_classes = torch.full_like(matched_idxs, self.num_classes)
            fg_idx, bg_idx = subsample_labels(
                gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            idx = torch.cat([fg_idx, bg_idx])
            props = props[idx]
            props.gt_classes = gt_classes[idx]
            if len(gt) > 0:
                gt_idx = matched_idxs[idx]
                for name, value in gt.get_fields().items():
                    if name.startswith("gt_") and not props.has(name):
                        props.set(name, value[gt_idx])
            sampled.append(props)
        return sampled

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        """Training: (sampled proposals, losses); inference: (detections, {})."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")
