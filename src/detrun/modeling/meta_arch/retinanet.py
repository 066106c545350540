"""RetinaNet (Lin et al. 2017): a dense detector with focal loss."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detrun.structures import Boxes, Instances

from ..anchor_matching import match_anchors, matched_boxes
from ..backbone import Backbone
from ..box_regression import Box2BoxTransform, box_regression_loss, check_box_reg_loss_type
from ..losses import sigmoid_focal_loss
from ..matcher import Matcher
from ..proposal_generator import DefaultAnchorGenerator
from .dense_detector import DenseDetector


class RetinaNet(DenseDetector):
    """RetinaNet, Detectron2-compatible (parameter names, losses, inference).

    Training: every anchor is matched to the ground truth by `anchor_matcher` (IoU 0.4 / 0.5,
    low-quality matches on); `loss_cls` is the sigmoid focal loss over all non-ignored anchors
    and classes, `loss_box_reg` the box regression over foreground anchors, both summed and
    divided by the number of foreground anchors in the batch, smoothed over steps by an
    exponential moving average (Detectron2's ``loss_normalizer``, starting at 100 with momentum
    0.9; momentum 0 normalises by the batch's own count). The average is a buffer, so a resumed
    run continues it exactly.

    Args:
        backbone, head, head_in_features, anchor_generator, box2box_transform, num_classes,
        test_score_thresh, test_topk_candidates, test_nms_thresh, max_detections_per_image,
        pixel_mean, pixel_std, input_format: see `DenseDetector`.
        anchor_matcher: labels anchors against the ground truth.
        focal_loss_alpha, focal_loss_gamma: focal loss parameters (0.25, 2.0).
        box_reg_loss_type: "smooth_l1" (on deltas) or "giou" (on decoded boxes).
        smooth_l1_beta: smooth-L1 transition point (Detectron2 0.1; 0 gives torchvision's L1).
        loss_normalizer_momentum: see above.
        weights: checkpoint to load after building (detrun, Detectron2, torchvision formats).
    """

    def __init__(self, *, backbone: Backbone, head: nn.Module, head_in_features: list[str],
                 anchor_generator: DefaultAnchorGenerator, box2box_transform: Box2BoxTransform,
                 anchor_matcher: Matcher, num_classes: int, focal_loss_alpha: float = 0.25,
                 focal_loss_gamma: float = 2.0, box_reg_loss_type: str = "smooth_l1", smooth_l1_beta: float = 0.1,
                 loss_normalizer_momentum: float = 0.9, test_score_thresh: float = 0.05,
                 test_topk_candidates: int = 1000, test_nms_thresh: float = 0.5, max_detections_per_image: int = 100,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "BGR",
                 weights: str | None = None):
        super().__init__(backbone=backbone, head=head, head_in_features=head_in_features,
                         anchor_generator=anchor_generator, box2box_transform=box2box_transform,
                         num_classes=num_classes, test_score_thresh=test_score_thresh,
                         test_topk_candidates=test_topk_candidates, test_nms_thresh=test_nms_thresh,
                         max_detections_per_image=max_detections_per_image, pixel_mean=pixel_mean,
                         pixel_std=pixel_std, input_format=input_format)
        check_box_reg_loss_type("RetinaNet", box_reg_loss_type)
        head_classes = getattr(head, "num_classes", num_classes)
        if head_classes != num_classes:
            raise ValueError(f"RetinaNet: num_classes = {num_classes} but head.num_classes = {head_classes}; "
                             "set head.num_classes: ${..num_classes}")
        self.anchor_matcher = anchor_matcher
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta
        self.loss_normalizer_momentum = loss_normalizer_momentum
        self.register_buffer("loss_normalizer", torch.tensor(100.0))
        self.finish_init(weights)

    @torch.no_grad()
    def label_anchors(self, anchors: Boxes, gt_instances: list[Instances]) -> tuple[Tensor, Tensor]:
        """Per image and anchor, the target class and box.

        Returns:
            gt_classes: int64 Tensor[N, A]: 0..K-1 foreground, K background, -1 ignored.
            gt_boxes: float Tensor[N, A, 4], the matched gt box (meaningful for foreground only).
        """
        gt_classes, gt_boxes = [], []
        for gt, (matched_idxs, labels) in zip(gt_instances, match_anchors(anchors, gt_instances, self.anchor_matcher)):
            classes = gt.gt_classes.to(anchors.device)[matched_idxs] if len(gt) else torch.zeros_like(matched_idxs)
            classes = classes.masked_fill(labels == 0, self.num_classes).masked_fill(labels == -1, -1)
            gt_classes.append(classes)
            gt_boxes.append(matched_boxes(gt.gt_boxes.to(anchors.device), matched_idxs))
        return torch.stack(gt_classes), torch.stack(gt_boxes)

    def dense_losses(self, anchors: list[Boxes], predictions: list[list[Tensor]],
                     gt_instances: list[Instances]) -> dict[str, Tensor]:
        """`loss_cls` (focal) and `loss_box_reg` (see the class docstring)."""
        anchors = Boxes.cat(anchors)
        gt_classes, gt_boxes = self.label_anchors(anchors, gt_instances)
        logits = torch.cat(predictions[0], dim=1)
        deltas = torch.cat(predictions[1], dim=1)
        valid = gt_classes >= 0
        foreground = valid & (gt_classes != self.num_classes)
        num_foreground = foreground.sum().item()  # a sync point on GPUs, once per step
        momentum = self.loss_normalizer_momentum
        self.loss_normalizer.mul_(momentum).add_((1 - momentum) * max(num_foreground, 1))

        targets = F.one_hot(gt_classes[valid], num_classes=self.num_classes + 1)[:, :-1]
        loss_cls = sigmoid_focal_loss(logits[valid], targets, alpha=self.focal_loss_alpha, gamma=self.focal_loss_gamma)
        fg_img, fg_anchor = foreground.nonzero(as_tuple=True)
        loss_box_reg = box_regression_loss(self.box2box_transform, anchors.tensor[fg_anchor], deltas[fg_img, fg_anchor],
                                           gt_boxes[fg_img, fg_anchor], loss_type=self.box_reg_loss_type,
                                           smooth_l1_beta=self.smooth_l1_beta)
        normalizer = self.loss_normalizer.item()
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}
