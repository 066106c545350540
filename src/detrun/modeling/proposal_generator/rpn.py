"""Region Proposal Network: anchors + head + matching/sampling losses + proposal selection."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detrun.structures import Boxes, ImageList, Instances

from ..anchor_matching import match_anchors, matched_boxes
from ..box_regression import Box2BoxTransform, box_regression_loss, check_box_reg_loss_type
from ..feature_protocol import FeatureUse, ReadsFeatures
from ..matcher import Matcher
from ..sampling import subsample_labels
from .anchor_generator import DefaultAnchorGenerator, check_head_anchors
from .base import ProposalGenerator
from .proposal_utils import find_top_rpn_proposals, top_rpn_proposals


class RPN(ProposalGenerator, ReadsFeatures):
    """Region Proposal Network (Faster R-CNN), Detectron2-compatible.

    Losses (training): `loss_rpn_cls`, binary cross-entropy over the sampled anchors, and
    `loss_rpn_loc`, box regression over the sampled positives, both summed and divided by
    ``batch_size_per_image * num_images`` (Detectron2's normalization).

    Args:
        in_features: names of the feature levels to use, e.g. ``["p2", "p3", "p4", "p5", "p6"]``.
        head: module mapping list of features -> (objectness logits, anchor deltas) per level
            (stored as `rpn_head`, Detectron2's parameter name).
        anchor_generator: makes the anchors the head predicts for.
        anchor_matcher: labels anchors against gt boxes (IoU 0.3 / 0.7, low-quality matches on).
        box2box_transform: anchor <-> box deltas coder (weights (1, 1, 1, 1)).
        batch_size_per_image: anchors sampled per image for the losses (256).
        positive_fraction: upper bound of the positive share of the sampled anchors (0.5).
        pre_nms_topk: (train, test) top-scoring anchors kept per level per image before NMS.
        post_nms_topk: (train, test) proposals kept per image after NMS.
        nms_thresh: IoU threshold of the per-level NMS (0.7).
        min_box_size: proposals whose width or height is not larger than this (input pixels)
            are dropped (Detectron2: 0; torchvision: 1e-3).
        nms_on_sigmoid: NMS ranks by sigmoid probability (torchvision) instead of logit
            (Detectron2); only the order of saturated ties differs.
        anchor_boundary_thresh: anchors reaching more than this many pixels outside the image
            are ignored in training; negative disables (the default in both libraries).
        loss_weight: multiplier of both losses, or a dict ``{"loss_rpn_cls": w, "loss_rpn_loc": w}``.
        box_reg_loss_type: "smooth_l1" or "giou".
        smooth_l1_beta: smooth-L1 transition point; 0 makes it an L1 loss (Detectron2 default).
    """

    def __init__(
        self,
        *,
        in_features: list[str],
        head: nn.Module,
        anchor_generator: DefaultAnchorGenerator,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk: tuple[int, int] = (2000, 1000),
        post_nms_topk: tuple[int, int] = (1000, 1000),
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        nms_on_sigmoid: bool = False,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ):
        super().__init__()
        check_head_anchors("RPN", head, anchor_generator)
        check_box_reg_loss_type("RPN", box_reg_loss_type)
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: int(pre_nms_topk[0]), False: int(pre_nms_topk[1])}
        self.post_nms_topk = {True: int(post_nms_topk[0]), False: int(post_nms_topk[1])}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.nms_on_sigmoid = nms_on_sigmoid
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if not isinstance(loss_weight, dict):
            loss_weight = {"loss_rpn_cls": loss_weight, "loss_rpn_loc": loss_weight}
        self.loss_weight = dict(loss_weight)
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta

    def feature_uses(self) -> list[FeatureUse]:
        strides = self.anchor_generator.strides
        return [FeatureUse("in_features", tuple(self.in_features), "anchor_generator.strides",
                           tuple(strides) if strides is not None else None)]

    def forward(
        self, images: ImageList, features: dict[str, Tensor], gt_instances: list[Instances] | None = None
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        """Proposals per image (see `ProposalGenerator`), and the losses in training mode.

        Args:
            images: the padded batch; `image_sizes` bound the proposals.
            features: backbone outputs by name, each Tensor[N, C, H_l, W_l].
            gt_instances: per image, Instances with `gt_boxes`; required in training.
        """
        anchors, logits, deltas = self.predictions(images.tensor, features)
        losses = {}
        if self.training:
            if gt_instances is None:
                raise ValueError("RPN in training mode needs gt_instances (with gt_boxes) for every image")
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, logits, gt_labels, deltas, gt_boxes)
        proposals = find_top_rpn_proposals(
            anchors,
            logits,
            deltas,
            images.image_sizes,
            box2box_transform=self.box2box_transform,
            nms_thresh=self.nms_thresh,
            pre_nms_topk=self.pre_nms_topk[self.training],
            post_nms_topk=self.post_nms_topk[self.training],
            min_box_size=self.min_box_size,
            nms_on_sigmoid=self.nms_on_sigmoid,
        )
        return proposals, losses

    def predictions(self, images: Tensor, features: dict[str, Tensor]) -> tuple[list[Boxes], list[Tensor], list[Tensor]]:
        """Anchors per level and the head's per-anchor predictions: objectness logits per level
        Tensor[N, A_l] and deltas Tensor[N, A_l, 4], in the anchors' order; `images` is the padded batch."""
        features = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(features, tuple(images.shape[-2:]))
        logits, deltas = self.rpn_head(features)
        # (N, A, H, W) -> (N, H*W*A): cell-major, anchor-minor, the anchors' order.
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
        # (N, A*4, H, W) -> (N, H*W*A, 4)
        deltas = [
            x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2) for x in deltas
        ]
        return anchors, logits, deltas

    def predict_proposals(self, images: Tensor, features: dict[str, Tensor], image_sizes: Tensor) -> list[Tensor]:
        """Inference on tensors only (the exportable core): per image the proposal boxes
        Tensor[R_i, 4], by decreasing objectness. `images`: the padded batch Tensor[N, C, H, W];
        `image_sizes`: int64 Tensor[N, 2] of (height, width) before padding."""
        anchors, logits, deltas = self.predictions(images, features)
        proposals = top_rpn_proposals(
            [a.tensor for a in anchors], logits, deltas, image_sizes, box2box_transform=self.box2box_transform,
            nms_thresh=self.nms_thresh, pre_nms_topk=self.pre_nms_topk[False], post_nms_topk=self.post_nms_topk[False],
            min_box_size=self.min_box_size, nms_on_sigmoid=self.nms_on_sigmoid)
        return [boxes for boxes, _ in proposals]

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[Tensor, Tensor]:
        """Match anchors to gt and sample them.

        Returns:
            gt_labels: int8 Tensor[N, A] (all levels): 1 positive, 0 negative, -1 not sampled.
            gt_boxes: float Tensor[N, A, 4], the matched gt box of each anchor (zeros without gt).
        """
        anchors = Boxes.cat(anchors)
        matches = match_anchors(anchors, gt_instances, self.anchor_matcher, boundary_thresh=self.anchor_boundary_thresh)
        gt_labels, gt_boxes = [], []
        for gt, (matched_idxs, labels) in zip(gt_instances, matches):
            pos_idx, neg_idx = subsample_labels(labels, self.batch_size_per_image, self.positive_fraction, 0)
            labels = torch.full_like(labels, -1)
            labels[pos_idx] = 1
            labels[neg_idx] = 0
            gt_labels.append(labels)
            gt_boxes.append(matched_boxes(gt.gt_boxes.to(anchors.device), matched_idxs))
        return torch.stack(gt_labels), torch.stack(gt_boxes)

    def losses(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[Tensor],
        gt_labels: Tensor,
        pred_anchor_deltas: list[Tensor],
        gt_boxes: Tensor,
    ) -> dict[str, Tensor]:
        """`loss_rpn_cls` and `loss_rpn_loc` (see the class docstring).

        Args:
            anchors: per level Boxes[A_l]; pred_objectness_logits: per level Tensor[N, A_l];
            gt_labels: int8 Tensor[N, A]; pred_anchor_deltas: per level Tensor[N, A_l, 4];
            gt_boxes: Tensor[N, A, 4].
        """
        num_images = gt_labels.shape[0]
        logits = torch.cat(pred_objectness_logits, dim=1)
        deltas = torch.cat(pred_anchor_deltas, dim=1)
        anchors = Boxes.cat(anchors).tensor
        pos = gt_labels == 1
        pos_img, pos_anchor = pos.nonzero(as_tuple=True)
        loss_loc = box_regression_loss(
            self.box2box_transform,
            anchors[pos_anchor],
            deltas[pos_img, pos_anchor],
            gt_boxes[pos_img, pos_anchor],
            loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        valid = gt_labels >= 0
        loss_cls = F.binary_cross_entropy_with_logits(
            logits[valid].float(), gt_labels[valid].float(), reduction="sum"
        )
        normalizer = self.batch_size_per_image * num_images
        return {
            "loss_rpn_cls": loss_cls / normalizer * self.loss_weight.get("loss_rpn_cls", 1.0),
            "loss_rpn_loc": loss_loc / normalizer * self.loss_weight.get("loss_rpn_loc", 1.0),
        }
