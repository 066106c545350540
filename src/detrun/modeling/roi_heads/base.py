"""ROIHeads base: the training-time matching, labelling and sampling shared by every ROI head."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.structures import Boxes, ImageList, Instances, pairwise_iou

from ..matcher import Matcher
from ..proposal_generator.proposal_utils import add_ground_truth_to_proposals
from ..sampling import subsample_labels


def select_foreground_proposals(proposals: list[Instances], bg_label: int) -> list[Instances]:
    """Per image, the proposals whose `gt_classes` is a foreground class (not -1, not `bg_label`)."""
    return [p[(p.gt_classes != -1) & (p.gt_classes != bg_label)] for p in proposals]


def select_proposals_with_visible_keypoints(proposals: list[Instances], bg_label: int) -> list[Instances]:
    """Per image, the foreground proposals whose matched object has a visible keypoint inside the
    proposal box (Detectron2's rule for training keypoint heads: others carry no keypoint target)."""
    selected = []
    for p in select_foreground_proposals(proposals, bg_label):
        if len(p) == 0:
            selected.append(p)
            continue
        if not p.has("gt_keypoints"):
            raise ValueError("a keypoint branch trains on gt_keypoints, which the inputs lack: set "
                             "dataloader.train.mapper.use_keypoint=True")
        kp = p.gt_keypoints.tensor
        x, y, visible = kp[..., 0], kp[..., 1], kp[..., 2] > 0
        boxes = p.proposal_boxes.tensor[:, None, :]
        inside = (x >= boxes[..., 0]) & (x <= boxes[..., 2]) & (y >= boxes[..., 1]) & (y <= boxes[..., 3])
        selected.append(p[(inside & visible).any(dim=1)])
    return selected


# How a branch picks the proposals it trains on (`ROIBranch(proposals=...)`).
PROPOSAL_SELECTIONS = {
    "foreground": select_foreground_proposals,
    "visible_keypoints": select_proposals_with_visible_keypoints,
}


@torch.no_grad()
def match_and_label(
    boxes: list[Boxes], targets: list[Instances], matcher: Matcher, num_classes: int
) -> list[tuple[Tensor, Tensor]]:
    """Match each image's boxes (proposals, or a cascade stage's boxes) to its ground truth.

    Args:
        boxes: per image, Boxes[R_i].
        targets: per image, gt Instances with `gt_boxes` and `gt_classes`.
        matcher: IoU thresholds -> labels.
        num_classes: C; background gets label C.

    Returns:
        Per image, (matched gt index int64 Tensor[R_i] (0 without gt), gt class int64 Tensor[R_i]:
        0..C-1 foreground, C background, -1 ignored).
    """
    results = []
    for boxes_i, gt in zip(boxes, targets):
        matched_idxs, matched_labels = matcher(pairwise_iou(gt.gt_boxes, boxes_i))
        if len(gt) > 0:
            gt_classes = gt.gt_classes[matched_idxs]
            gt_classes[matched_labels == 0] = num_classes
            gt_classes[matched_labels == -1] = -1
        else:
            gt_classes = torch.full_like(matched_idxs, num_classes)
        results.append((matched_idxs, gt_classes))
    return results


def attach_targets(proposals: Instances, gt: Instances, matched_idxs: Tensor, gt_classes: Tensor) -> Instances:
    """Set `gt_classes` and, when the image has gt, every `gt_*` field of each proposal's matched
    object (`gt_boxes`, `gt_masks`, `gt_keypoints`...) on `proposals`, replacing earlier ones; returns it."""
    proposals.gt_classes = gt_classes
    if len(gt) > 0:
        for name, value in gt.get_fields().items():
            if name.startswith("gt_") and name != "gt_classes":
                proposals.set(name, value[matched_idxs])
    return proposals


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
        labels = match_and_label([p.proposal_boxes for p in proposals], targets, self.proposal_matcher,
                                 self.num_classes)
        sampled = []
        for props, gt, (matched_idxs, gt_classes) in zip(proposals, targets, labels):
            fg_idx, bg_idx = subsample_labels(
                gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            idx = torch.cat([fg_idx, bg_idx])
            sampled.append(attach_targets(props[idx], gt, matched_idxs[idx], gt_classes[idx]))
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
