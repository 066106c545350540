"""Dense (one-stage) detectors: a head predicts at every anchor of every level, no proposals."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from detrun.ops import batched_nms, clip_boxes_to_image
from detrun.structures import Boxes, ImageList, Instances

from ..backbone import Backbone
from ..box_regression import Box2BoxTransform
from ..feature_protocol import FeatureUse, ReadsFeatures
from ..proposal_generator.anchor_generator import DefaultAnchorGenerator, check_head_anchors
from .base import MetaArchitecture


def permute_to_N_HWA_K(x: Tensor, k: int) -> Tensor:
    """Head output Tensor[N, A*K, H, W] -> Tensor[N, H*W*A, K]: the anchors' order (cell-major)."""
    n, _, h, w = x.shape
    return x.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


class DenseDetector(MetaArchitecture, ReadsFeatures):
    """Backbone -> head on `head_in_features` -> per-anchor predictions, shared by one-stage detectors.

    The head maps a list of feature maps to a tuple of per-level outputs, each Tensor[N, A*D, H, W]
    with D = `head_output_dims[j]` (RetinaNet: class logits, D = K, and box deltas, D = 4).
    This class runs it, permutes the outputs to Tensor[N, H*W*A, D] in the anchors' order and
    hands them to the subclass's `dense_losses` (training) or decodes them (inference: per-level
    candidates above `test_score_thresh`, top `test_topk_candidates` per level, decoding,
    clipping, class-aware NMS, `max_detections_per_image`).

    Args:
        backbone: images -> named feature maps (e.g. an FPN with P3-P7).
        head: list of features -> tuple of per-level outputs (see above).
        head_in_features: feature names fed to the head, finest first.
        anchor_generator: anchors for those levels; its strides are checked against the backbone.
        box2box_transform: anchor <-> box deltas coder.
        num_classes: foreground classes K.
        test_score_thresh: candidates need a class probability above this (0.05 in both libraries).
        test_topk_candidates: best candidates kept per level before NMS (1000).
        test_nms_thresh: IoU threshold of the class-aware NMS over all levels (0.5).
        max_detections_per_image: detections kept per image after NMS (100).
        pixel_mean, pixel_std, input_format: see `MetaArchitecture`.

    Boxes are clipped to the image before NMS (torchvision's order; Detectron2 clips after, so
    boxes reaching outside the image may suppress differently).
    """

    def __init__(self, *, backbone: Backbone, head: nn.Module, head_in_features: list[str],
                 anchor_generator: DefaultAnchorGenerator, box2box_transform: Box2BoxTransform, num_classes: int,
                 test_score_thresh: float = 0.05, test_topk_candidates: int = 1000, test_nms_thresh: float = 0.5,
                 max_detections_per_image: int = 100, pixel_mean: list[float], pixel_std: list[float],
                 input_format: str = "RGB"):
        super().__init__(backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format)
        check_head_anchors(type(self).__name__, head, anchor_generator)
        self.head = head
        self.head_in_features = list(head_in_features)
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.num_classes = num_classes
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    @property
    def head_output_dims(self) -> tuple[int, ...]:
        """D of each head output (per anchor): class logits and box deltas by default."""
        return (self.num_classes, 4)

    def feature_uses(self) -> list[FeatureUse]:
        strides = self.anchor_generator.strides
        return [FeatureUse("head_in_features", tuple(self.head_in_features), "anchor_generator.strides",
                           tuple(strides) if strides is not None else None)]

    def run_head(self, images: ImageList | Tensor) -> tuple[list[Boxes], list[list[Tensor]]]:
        """Anchors per level, and per head output the per-level predictions Tensor[N, H*W*A, D]
        (`images`: the padded batch, as an ImageList or its tensor)."""
        images = images.tensor if isinstance(images, ImageList) else images
        features = self.backbone(images)
        features = [features[f] for f in self.head_in_features]
        anchors = self.anchor_generator(features, tuple(images.shape[-2:]))
        outputs = self.head(features)
        predictions = [[permute_to_N_HWA_K(x, d) for x in output] for output, d in zip(outputs, self.head_output_dims)]
        return anchors, predictions

    def compute_losses(self, images: ImageList, batched_inputs: list[dict[str, Any]]) -> dict[str, Tensor]:
        anchors, predictions = self.run_head(images)
        return self.dense_losses(anchors, predictions, self.ground_truth(batched_inputs))

    @abstractmethod
    def dense_losses(self, anchors: list[Boxes], predictions: list[list[Tensor]],
                     gt_instances: list[Instances]) -> dict[str, Tensor]:
        """Losses from per-level anchors and predictions (see `run_head`) and the ground truth."""

    def inference_tensors(self, images: Tensor, image_sizes: Tensor) -> dict[str, Tensor]:
        """The tensor-only inference core (see `MetaArchitecture`): ``boxes``, ``scores``,
        ``classes`` and ``counts``.

        Class probabilities are the sigmoid of the first head output, box deltas the second;
        both are decoded in float32 (under bf16/fp16 autocast too), so `scores` are float32.
        """
        anchors, (logits, deltas) = self.run_head(images)
        anchors = [a.tensor for a in anchors]
        detections = [
            dense_detection_tensors(
                anchors, [x[i].float().sigmoid() for x in logits], [x[i] for x in deltas], image_sizes[i],
                box2box_transform=self.box2box_transform, score_thresh=self.test_score_thresh,
                topk_candidates=self.test_topk_candidates, nms_thresh=self.test_nms_thresh,
                max_detections=self.max_detections_per_image)
            for i in range(images.shape[0])
        ]
        return {
            "boxes": torch.cat([d[0] for d in detections]),
            "scores": torch.cat([d[1] for d in detections]),
            "classes": torch.cat([d[2] for d in detections]),
            # (Each count is symbolic under torch.export: no Python list of them.)
            "counts": torch.stack([torch.scalar_tensor(d[0].shape[0], dtype=torch.int64, device=images.device)
                                   for d in detections]),
        }


def decode_dense_detections(
    anchors: list[Boxes],
    scores: list[Tensor],
    deltas: list[Tensor],
    image_size: tuple[int, int],
    *,
    box2box_transform: Box2BoxTransform,
    score_thresh: float,
    topk_candidates: int,
    nms_thresh: float,
    max_detections: int,
) -> Instances:
    """One image's detections from per-anchor class probabilities and box deltas.

    Per level, the (anchor, class) pairs scoring above `score_thresh`, at most the best
    `topk_candidates` of them, are decoded and clipped to the image; then class-aware NMS over
    all levels keeps the best `max_detections` (Detectron2's and torchvision's procedure).

    Args:
        anchors: per level, Boxes[A_l].
        scores: per level, probabilities Tensor[A_l, K].
        deltas: per level, Tensor[A_l, 4].
        image_size: (h, w) boxes are clipped to, pixels.

    Returns:
        Instances with `pred_boxes`, `scores` and `pred_classes` (int64, 0..K-1), by decreasing score.
    """
    size = torch.tensor(image_size, dtype=torch.int64, device=scores[0].device)
    boxes, scores, classes = dense_detection_tensors(
        [a.tensor for a in anchors], scores, deltas, size, box2box_transform=box2box_transform,
        score_thresh=score_thresh, topk_candidates=topk_candidates, nms_thresh=nms_thresh,
        max_detections=max_detections)
    return Instances(image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes)


def dense_detection_tensors(
    anchors: list[Tensor],
    scores: list[Tensor],
    deltas: list[Tensor],
    image_size: Tensor | tuple[int, int],
    *,
    box2box_transform: Box2BoxTransform,
    score_thresh: float,
    topk_candidates: int,
    nms_thresh: float,
    max_detections: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """`decode_dense_detections` on tensors only (the exportable core): anchors per level as
    Tensor[A_l, 4], `image_size` as (h, w) numbers or an integer Tensor[2]. Returns (boxes
    Tensor[D, 4], scores Tensor[D], classes int64 Tensor[D]), by decreasing score."""
    boxes_all, scores_all, classes_all = [], [], []
    for anchors_l, scores_l, deltas_l in zip(anchors, scores, deltas):
        num_classes = scores_l.shape[1]
        flat = scores_l.flatten()
        candidates = (flat > score_thresh).nonzero().squeeze(1)
        # torch.sym_min: the count of candidates is symbolic under torch.export.
        top_scores, order = flat[candidates].topk(torch.sym_min(topk_candidates, candidates.shape[0]))
        candidates = candidates[order]
        anchor_idx = candidates // num_classes
        boxes = box2box_transform.apply_deltas(deltas_l[anchor_idx], anchors_l[anchor_idx])
        boxes_all.append(clip_boxes_to_image(boxes, image_size))
        scores_all.append(top_scores)
        classes_all.append(candidates % num_classes)
    boxes, scores_cat, classes = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(classes_all)
    keep = batched_nms(boxes, scores_cat, classes, nms_thresh)[:max_detections]
    return boxes[keep], scores_cat[keep], classes[keep]
