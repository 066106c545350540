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
        """``[{"instances": Instances}]`` at network resolution, masks as box-relative probabilities:
        the Instances layer over `inference_tensors`, or, when a custom part has no tensor-only
        inference, the parts' Instances API (eager only)."""
        if self.tensor_core_missing() is None:
            return super().raw_inference(images)
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        return [{"instances": r} for r in results]

    def inference_tensors(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensor-only inference core (see `MetaArchitecture`): backbone, the proposal
        generator's `predict_proposals`, the ROI heads' `predict`."""
        missing = self.tensor_core_missing()
        if missing is not None:
            raise NotImplementedError(f"{type(self).__name__} has no tensor-only inference core: {missing}")
        features = self.backbone(images)
        proposals = self.proposal_generator.predict_proposals(images, features, image_sizes)
        return self.roi_heads.predict(features, proposals, image_sizes)

    def instance_fields(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The ROI heads' branch fields (`pred_masks`, `pred_keypoints`...)."""
        return self.roi_heads.instance_fields(outputs)

    def tensor_core_missing(self) -> str | None:
        """Why `inference_tensors` can't run with these parts (a custom part with only the
        Instances API), or None."""
        if not hasattr(self.proposal_generator, "predict_proposals"):
            return f"the proposal generator {type(self.proposal_generator).__name__} has no predict_proposals"
        for method in ("predict", "instance_fields"):
            if not hasattr(self.roi_heads, method):
                return f"the ROI heads {type(self.roi_heads).__name__} have no {method}"
        check = getattr(self.roi_heads, "tensor_core_missing", None)
        return check() if check is not None else None
