"""Box predictor: class scores and class-specific box deltas, their losses and inference."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import Instances

from ..box_regression import Box2BoxTransform


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers: class logits (C + 1, background LAST) and box deltas (C * 4).

    Args:
        in_channels: size of the box head's output features.
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
        in_channels: int,
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
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor[R, in_channels] (or more dims, flattened) -> (scores [R, C+1], deltas [R, C*4])."""
        raise NotImplementedError

    def losses(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances]) -> dict[str, Tensor]:
        """`loss_cls` (cross-entropy) and `loss_box_reg` (sum over foreground / number of proposals)."""
        raise NotImplementedError

    def inference(self, predictions: tuple[Tensor, Tensor], proposals: list[Instances]) -> list[Instances]:
        """Per image: pred_boxes, scores, pred_classes after score threshold, per-class NMS and top-k."""
        raise NotImplementedError
