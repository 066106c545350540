"""Box predictor: class scores and class-specific box deltas, their losses and inference."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detrun.ops import batched_nms, clip_boxes_to_image, nonempty_boxes
from detrun.structures import Boxes, Instances

from ..box_regression import Box2BoxTransform, box_regression_loss, check_box_reg_loss_type


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers: class logits (C + 1, background LAST) and box deltas (C * 4).

    Losses: `loss_cls`, cross-entropy averaged over the sampled proposals; `loss_box_reg`, the
    regression loss of the gt class's deltas summed over foreground proposals and divided by
    the number of sampled proposals (Detectron2's normalization).

    Inference (per image): softmax, decode every class's box, clip, keep scores >
    `test_score_thresh`, drop small boxes, per-class NMS, keep the top `test_topk_per_image`:
    the order of operations of both Detectron2 and torchvision.

    Args:
        in_channels: size of the box head's output features; None: derived from the box head's
            `output_size` when the ROI heads are built (the layers are created then). The ROI
            heads check a given value against the box head too.
        num_classes: number of foreground classes C.
        box2box_transform: proposal <-> box coder (weights (10, 10, 5, 5)).
        cls_agnostic_bbox_reg: predict one box (4 deltas) for all classes instead of C.
        smooth_l1_beta: smooth-L1 transition point; 0 = L1 (Detectron2 default).
        box_reg_loss_type: "smooth_l1" or "giou".
        test_score_thresh: drop detections scoring at or below this (0.05).
        test_nms_thresh: per-class NMS IoU threshold (0.5).
        test_topk_per_image: detections kept per image (100); negative keeps all.
        min_box_size: at inference, drop boxes whose width or height is not larger than this
            (input pixels; Detectron2: 0; torchvision: 1e-2).
        loss_weight: multiplier of both losses or a dict ``{"loss_cls": w, "loss_box_reg": w}``.
    """

    def __init__(
        self,
        *,
        in_channels: int | None = None,
        num_classes: int,
        box2box_transform: Box2BoxTransform,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        test_score_thresh: float = 0.05,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        min_box_size: float = 0.0,
        loss_weight: float | dict[str, float] = 1.0,
    ):
        super().__init__()
        check_box_reg_loss_type("FastRCNNOutputLayers", box_reg_loss_type)
        self.num_classes = num_classes
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg
        self.in_channels = None
        if in_channels is not None:
            self.bind_in_channels(in_channels)
        self.box2box_transform = box2box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.min_box_size = float(min_box_size)
        if not isinstance(loss_weight, dict):
            loss_weight = {"loss_cls": loss_weight, "loss_box_reg": loss_weight}
        self.loss_weight = dict(loss_weight)

    def bind_in_channels(self, in_channels: int, where: str = "box_predictor") -> None:
        """Create the two linear layers for `in_channels` input features, or, if they exist, check
        that they take that many (ValueError naming `where` otherwise). The ROI heads call this
        with their box head's output size."""
        if self.in_channels is not None:
            if self.in_channels != in_channels:
                raise ValueError(f"{where}.in_channels = {self.in_channels}, but the box head gives {in_channels} "
                                 "features per box (its output_size: the last fc_dims entry, or conv channels x "
                                 "pooled size without FC layers); set it to null to derive it from the box head")
            return
        self.in_channels = int(in_channels)
        self.cls_score = nn.Linear(in_channels, self.num_classes + 1)
        self.bbox_pred = nn.Linear(in_channels, 4 if self.cls_agnostic_bbox_reg else 4 * self.num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor[R, in_channels] (or more dims, flattened) -> (logits [R, C+1], deltas [R, C*4 or 4])."""
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)

    def losses(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances]) -> dict[str, Tensor]:
        """`loss_cls` and `loss_box_reg` of sampled proposals.

        Args:
            predictions: this module's outputs for the proposals of all images, concatenated.
            proposals: per image, sampled Instances with `proposal_boxes`, `gt_classes`
                (C = background) and, for images with gt, `gt_boxes`.
        """
        logits, deltas = predictions
        if not proposals:  # a batch without images: zero losses, still connected to the predictions
            zero = logits.sum() * 0.0 + deltas.sum() * 0.0
            return {"loss_cls": zero, "loss_box_reg": zero.clone()}
        gt_classes = torch.cat([p.gt_classes for p in proposals])
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        # Images without gt carry no gt_boxes; their proposals are all background, never regressed.
        gt_boxes = torch.cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals])
        num = max(gt_classes.numel(), 1)
        # sum / max(n, 1) instead of mean: stays 0 (and in the graph) with no proposals at all.
        loss_cls = F.cross_entropy(logits.float(), gt_classes, reduction="sum") / num

        fg = torch.nonzero((gt_classes >= 0) & (gt_classes < self.num_classes)).squeeze(1)
        if deltas.shape[1] == 4:
            fg_deltas = deltas[fg]
        else:
            fg_deltas = deltas.view(-1, self.num_classes, 4)[fg, gt_classes[fg]]
        loss_box_reg = box_regression_loss(
            self.box2box_transform,
            proposal_boxes[fg],
            fg_deltas,
            gt_boxes[fg],
            loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        ) / num
        return {
            "loss_cls": loss_cls * self.loss_weight.get("loss_cls", 1.0),
            "loss_box_reg": loss_box_reg * self.loss_weight.get("loss_box_reg", 1.0),
        }

    def predict_boxes(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances] | list[Tensor]) -> list[Tensor]:
        """Decoded boxes per image, Tensor[R_i, K*4] (K = C, or 1 if class-agnostic); `proposals`
        per image as Instances with `proposal_boxes` or as box tensors Tensor[R_i, 4]."""
        _, deltas = predictions
        proposal_boxes = [proposal_box_tensor(p) for p in proposals]
        boxes = self.box2box_transform.apply_deltas(deltas, torch.cat(proposal_boxes))
        return list(boxes.split([b.shape[0] for b in proposal_boxes]))

    def predict_probs(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances] | list[Tensor]) -> list[Tensor]:
        """Class probabilities per image, Tensor[R_i, C+1] (background last)."""
        logits, _ = predictions
        return list(F.softmax(logits.float(), dim=-1).split([proposal_box_tensor(p).shape[0] for p in proposals]))

    def inference(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances]) -> list[Instances]:
        """Per image: Instances with `pred_boxes`, `scores`, `pred_classes` (see the class docstring)."""
        if not proposals:
            return []
        boxes = self.predict_boxes(predictions, proposals)
        probs = self.predict_probs(predictions, proposals)
        return [self.detections(b, s, p.image_size) for b, s, p in zip(boxes, probs, proposals)]

    def inference_tensors(self, predictions: tuple[Tensor, Tensor], proposal_boxes: list[Tensor],
                          image_sizes: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """`inference` on tensors only (the exportable core): per image (boxes Tensor[D_i, 4], scores
        Tensor[D_i], classes int64 Tensor[D_i]) from the proposal boxes and int64 `image_sizes` Tensor[N, 2]."""
        boxes = self.predict_boxes(predictions, proposal_boxes)
        probs = self.predict_probs(predictions, proposal_boxes)
        return [self.detection_tensors(b, s, image_sizes[i]) for i, (b, s) in enumerate(zip(boxes, probs))]

    def detections(self, boxes: Tensor, probs: Tensor, image_size: tuple[int, int]) -> Instances:
        """One image's detections from decoded boxes Tensor[R, K*4] and class probabilities
        Tensor[R, C+1] (e.g. Cascade R-CNN's averaged over stages): clip, threshold, NMS, top-k."""
        size = torch.tensor(image_size, dtype=torch.int64, device=boxes.device)
        boxes, scores, classes = self.detection_tensors(boxes, probs, size)
        return Instances(image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes)

    def detection_tensors(self, boxes: Tensor, probs: Tensor, image_size: Tensor | tuple[int, int]
                          ) -> tuple[Tensor, Tensor, Tensor]:
        """`detections` as (boxes Tensor[D, 4], scores Tensor[D], classes int64 Tensor[D]), by decreasing
        score; `image_size` (height, width) as numbers or an integer Tensor[2]."""
        num_reg = boxes.shape[1] // 4
        # Diverged or random weights can produce inf/nan: those rows never pass the score filter.
        finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probs).all(dim=1)
        scores = probs[:, :-1]
        boxes = clip_boxes_to_image(boxes.view(-1, num_reg, 4), image_size)
        keep_mask = (scores > self.test_score_thresh) & finite[:, None]
        box_idx, classes = keep_mask.nonzero(as_tuple=True)
        boxes = boxes[box_idx, classes if num_reg > 1 else 0]
        scores = scores[box_idx, classes]
        large = nonempty_boxes(boxes, self.min_box_size)
        boxes, scores, classes = boxes[large], scores[large], classes[large]
        keep = batched_nms(boxes, scores, classes, self.test_nms_thresh)
        if self.test_topk_per_image >= 0:
            keep = keep[: self.test_topk_per_image]
        return boxes[keep], scores[keep], classes[keep]


def proposal_box_tensor(proposals: Instances | Tensor) -> Tensor:
    """One image's proposal boxes Tensor[R, 4] from Instances (`proposal_boxes`) or a tensor."""
    return proposals if isinstance(proposals, Tensor) else proposals.proposal_boxes.tensor
