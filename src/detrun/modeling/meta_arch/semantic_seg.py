"""SemanticSegmentor: backbone -> semantic segmentation head (Semantic FPN)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from detrun.structures import ImageList

from ..backbone import Backbone
from .base import MetaArchitecture


def padded_label_maps(batched_inputs: list[dict[str, Any]], images: ImageList, ignore_value: int,
                      device: torch.device) -> torch.Tensor:
    """The inputs' ``"sem_seg"`` (int64 Tensor[H, W] each) padded bottom/right with `ignore_value`
    to the padded batch: int64 Tensor[N, Hp, Wp], aligned with ``images.tensor``."""
    height, width = images.tensor.shape[-2:]
    maps = []
    for i, x in enumerate(batched_inputs):
        label = x["sem_seg"].to(device=device, dtype=torch.int64)
        if tuple(label.shape) != tuple(images.image_sizes[i]):
            raise ValueError(f"input {i}: its sem_seg is {tuple(label.shape)} but its image "
                             f"{tuple(images.image_sizes[i])}; the mapper must transform both alike")
        maps.append(F.pad(label, (0, width - label.shape[1], 0, height - label.shape[0]), value=ignore_value))
    return torch.stack(maps)


class SemanticSegmentor(MetaArchitecture):
    """Per-pixel classification: ``"sem_seg"`` scores Tensor[C, H, W] per image in eval mode,
    ``{"loss_sem_seg": ...}`` in training (inputs need ``"sem_seg"`` label maps from the mapper).
    Inference is the tensor-only core `inference_tensors` (exportable, see `detrun.export`).

    Args:
        backbone: images -> named feature maps (e.g. `FPN` over `ResNet`).
        sem_seg_head: features (+ padded label maps) -> logits / losses (e.g. `SemSegFPNHead`);
            its ``ignore_value`` pads the label maps.
        pixel_mean, pixel_std, input_format, weights: see `GeneralizedRCNN`.
    """

    training_targets = ("sem_seg",)

    def __init__(self, *, backbone: Backbone, sem_seg_head: nn.Module, pixel_mean: list[float],
                 pixel_std: list[float], input_format: str = "RGB", weights: str | None = None):
        super().__init__(backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format)
        self.sem_seg_head = sem_seg_head
        self.finish_init(weights)

    def compute_losses(self, images: ImageList, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``{"loss_sem_seg": ...}``: cross-entropy over the labelled pixels."""
        features = self.backbone(images.tensor)
        targets = padded_label_maps(batched_inputs, images, self.sem_seg_head.ignore_value, self.device)
        _, losses = self.sem_seg_head(features, targets)
        return losses

    def inference_tensors(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensor-only inference core (see `MetaArchitecture`): ``{"sem_seg": logits Tensor[N, C,
        Hp, Wp]}`` over the normalised padded batch Tensor[N, C, Hp, Wp] (`image_sizes` is unused:
        `postprocess` crops the padding)."""
        logits, _ = self.sem_seg_head(self.backbone(images))
        return {"sem_seg": logits}
