"""GeneralizedRCNN: backbone -> proposal generator -> ROI heads, i.e. Faster and Mask R-CNN."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detrun.structures import ImageList

from ..backbone import Backbone
from ..postprocess import detector_postprocess
from .base import MetaArchitecture
from .feature_check import check_feature_contract

INPUT_FORMATS = ("RGB", "BGR")


class GeneralizedRCNN(MetaArchitecture):
    """Two-stage detector assembled from swappable parts.

    Args:
        backbone: images -> named feature maps (e.g. `FPN` over `ResNet`).
        proposal_generator: (images, features, gt) -> proposals, losses (e.g. `RPN`).
        roi_heads: (images, features, proposals, gt) -> detections, losses (e.g. `StandardROIHeads`).
        pixel_mean, pixel_std: per-channel statistics in 0-255 units, in `input_format` order;
            the network sees ``(image - pixel_mean) / pixel_std``.
        input_format: channel order of the input images, "RGB" or "BGR" (Detectron2's MSRA/Caffe2
            ImageNet weights expect BGR). The model doesn't reorder channels: the data mapper
            reads images in this order (recipes set ``mapper.image_format: ${model.input_format}``),
            and tools that show images read it from here.
        weights: checkpoint to load after building (any format `detrun.checkpoint.load_weights`
            reads: detrun, Detectron2 .pkl/.pth, torchvision); None starts from the parts' init.
    """

    def __init__(self, *, backbone: Backbone, proposal_generator: nn.Module, roi_heads: nn.Module,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "RGB",
                 weights: str | None = None):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got '{input_format}'")
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"pixel_mean {list(pixel_mean)} and pixel_std {list(pixel_std)} differ in length")
        check_feature_contract(backbone.output_shape(), proposal_generator, roi_heads)
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        # Not saved in checkpoints: they belong to the recipe (and differ between weight sources).
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        self.load_initial_weights(weights)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor] | list[dict[str, Any]]:
        """Training: dict of scalar ``loss_*``; eval: ``[{"instances": Instances}]`` at each input's
        height/width (see `MetaArchitecture`)."""
        if not self.training:
            return self.inference(batched_inputs)
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"GeneralizedRCNN in training mode needs 'instances' (ground truth) in every input; "
                             f"inputs {missing} have none (use a training mapper, or call model.eval())")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**proposal_losses, **detector_losses}

    def inference(self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True) -> list:
        """Detect objects in eval mode.

        Returns ``[{"instances": Instances}]`` rescaled to each input's ``height`` x ``width``
        (the image's own size if absent), masks pasted as bool Tensor[N, height, width]; with
        ``do_postprocess=False``, the raw per-image `Instances` at network resolution.
        """
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return results
        outputs = []
        for result, inputs, image_size in zip(results, batched_inputs, images.image_sizes):
            height = inputs.get("height", image_size[0])
            width = inputs.get("width", image_size[1])
            outputs.append({"instances": detector_postprocess(result, int(height), int(width))})
        return outputs

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        """Move images to the model's device, normalise, pad into an ImageList.

        Padding (bottom/right, to a multiple of the backbone's `size_divisibility`) is 0 after
        normalisation, i.e. the mean colour.
        """
        images = []
        for x in batched_inputs:
            image = x["image"].to(self.device, non_blocking=True)
            if image.dim() != 3 or image.shape[0] != self.pixel_mean.shape[0]:
                raise ValueError(f"GeneralizedRCNN expects 'image' as Tensor[{self.pixel_mean.shape[0]}, H, W], "
                                 f"got shape {tuple(image.shape)}")
            images.append((image - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, size_divisibility=self.backbone.size_divisibility, pad_value=0.0)

