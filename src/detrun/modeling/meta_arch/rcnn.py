"""GeneralizedRCNN: backbone -> proposal generator -> ROI heads, i.e. Faster and Mask R-CNN."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detrun.structures import ImageList

from ..backbone import Backbone
from .base import MetaArchitecture


class GeneralizedRCNN(MetaArchitecture):
    """Two-stage detector assembled from swappable parts.

    Args:
        backbone: images -> named feature maps (e.g. `FPN` over `ResNet`).
        proposal_generator: (images, features, gt) -> proposals, losses (e.g. `RPN`).
        roi_heads: (images, features, proposals, gt) -> detections, losses (e.g. `StandardROIHeads`).
        pixel_mean, pixel_std, input_format: see `MetaArchitecture`.
        weights: checkpoint to load after building (any format `detrun.checkpoint.load_weights`
            reads: detrun, Detectron2 .pkl/.pth, torchvision); None starts from the parts' init.
    """

    def __init__(self, *, backbone: Backbone, proposal_generator: nn.Module, roi_heads: nn.Module,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "RGB",
                 weights: str | None = None):
        super().__init__(backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format)
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.finish_init(weights)

    def compute_losses(self, images: ImageList, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """RPN and ROI-head losses (``loss_rpn_*``, ``loss_cls``, ``loss_box_reg``, ``loss_mask``...)."""
        gt_instances = self.ground_truth(batched_inputs)
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**proposal_losses, **detector_losses}

    def raw_inference(self, images: ImageList) -> list[dict[str, Any]]:
        """``[{"instances": Instances}]`` at network resolution, masks as box-relative probabilities."""
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        return [{"instances": r} for r in results]
