"""The contract of a whole detector: what the engine, evaluator and CLI may rely on.

The base class owns everything detectors share (pixel statistics, input format, normalising
and padding the batch, checking that the parts read features the backbone has, and rescaling
results to each caller's image size); a subclass writes only its losses and its raw inference.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch
from torch import nn

from detrun.checkpoint import load_weights
from detrun.structures import Boxes, ImageList, Instances

from ..backbone import Backbone
from ..feature_protocol import check_feature_uses
from ..postprocess import postprocess_outputs

INPUT_FORMATS = ("RGB", "BGR")


class MetaArchitecture(nn.Module, metaclass=ABCMeta):
    """A detector called on a batch of mapper outputs.

    ``model(batched_inputs: list[dict])``, each dict as the data mapper makes it
    (``"image"``: uint8 Tensor[3, H, W]; ground truth such as ``"instances"`` in training;
    ``"height"``/``"width"`` of the original image):

    - in training mode, returns ``dict[str, Tensor]`` of scalar losses named ``loss_*``
      (their sum is what the engine minimises);
    - in eval mode, returns one dict per input with any of

      - ``"instances"``: `Instances` with ``pred_boxes``, ``scores``, ``pred_classes``
        (0..C-1) and, depending on the model, ``pred_masks`` (bool Tensor[N, H, W]) and
        ``pred_keypoints`` (Tensor[N, K, 3] of x, y, score);
      - ``"sem_seg"``: float Tensor[C, H, W] of per-class scores;
      - ``"panoptic_seg"``: (int32 Tensor[H, W] of segment ids, list of segment dicts
        ``{"id", "category_id", "isthing", ...}``);

      all at the input's ``height`` x ``width`` (the image's own size when absent).

    Subclasses call ``super().__init__(backbone=..., pixel_mean=..., pixel_std=..., input_format=...)``,
    assign their parts, then `finish_init(weights)`; they implement `compute_losses` and list the
    ground-truth keys they train on in `training_targets`. For inference they implement either
    the tensor-only core `inference_tensors` (exportable with `torch.export`, see `detrun.export`;
    the default `raw_inference` wraps its outputs into `Instances`) or `raw_inference` itself
    (eager only).

    The tensor-only core: ``inference_tensors(images, image_sizes) -> dict[str, Tensor]`` takes the
    normalised, padded batch Tensor[N, C, Hp, Wp] and int64 image sizes Tensor[N, 2] of (height,
    width) before padding, and returns, for all images' detections together (image by image,
    each by decreasing score), ``"boxes"`` Tensor[D, 4] (XYXY, network pixels), ``"scores"``
    Tensor[D], ``"classes"`` int64 Tensor[D], ``"counts"`` int64 Tensor[N] (detections per
    image) and what the model adds: ``"mask_probs"`` Tensor[D, 1, M, M] (box-relative),
    ``"keypoint_heatmaps"`` Tensor[D, K, S, S], ``"sem_seg"`` Tensor[N, C, Hp, Wp] (per image).
    No `Instances`, no Python numbers that depend on the data: an exported program computes it
    for any image size. `results_from_tensors` is the layer on top (Instances, keypoint decoding);
    `postprocess` then pastes masks and rescales to each input's size.

    Args:
        backbone: images -> named feature maps; its `padding_constraints` decide the padding.
        pixel_mean, pixel_std: per-channel statistics in 0-255 units, in `input_format` order;
            the network sees ``(image - pixel_mean) / pixel_std``.
        input_format: channel order of the input images, "RGB" or "BGR" (Detectron2's MSRA/Caffe2
            ImageNet weights expect BGR). The model doesn't reorder channels: the data mapper
            reads images in this order (recipes set ``mapper.image_format: ${model.input_format}``),
            and tools that show images read it from here.
    """

    training_targets: tuple[str, ...] = ("instances",)

    def __init__(self, *, backbone: Backbone, pixel_mean: list[float], pixel_std: list[float],
                 input_format: str = "RGB"):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got '{input_format}'")
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"pixel_mean {list(pixel_mean)} and pixel_std {list(pixel_std)} differ in length")
        self.backbone = backbone
        self.input_format = input_format
        # Not saved in checkpoints: they belong to the recipe (and differ between weight sources).
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)

    def finish_init(self, weights: str | None) -> None:
        """Check every part against the backbone's features, then load `weights` (if any).

        Called at the end of a subclass's ``__init__``, once all parts are assigned.
        """
        parts = {name: module for name, module in self.named_children() if name != "backbone"}
        check_feature_uses(self.backbone.output_shape(), {"": self, **parts})
        if weights:
            load_weights(self, weights)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor] | list[dict[str, Any]]:
        """Losses (training) or per-image results (eval); see the class docstring."""
        if not self.training:
            return self.inference(batched_inputs)
        for key in self.training_targets:
            missing = [i for i, x in enumerate(batched_inputs) if key not in x]
            if missing:
                raise ValueError(f"{type(self).__name__} in training mode needs '{key}' (ground truth) in every "
                                 f"input; inputs {missing} have none (use a training mapper, or call model.eval())")
        return self.compute_losses(self.preprocess_image(batched_inputs), batched_inputs)

    def inference(self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True) -> list[dict[str, Any]]:
        """Per-image results rescaled to each input's height x width (see the class docstring);
        with ``do_postprocess=False``, the raw results at network resolution (`raw_inference`)."""
        images = self.preprocess_image(batched_inputs)
        results = self.raw_inference(images)
        if not do_postprocess:
            return results
        return self.postprocess(results, batched_inputs, images.image_sizes)

    @abstractmethod
    def compute_losses(self, images: ImageList, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Training losses ``{"loss_*": scalar}`` for the preprocessed `images` and the inputs' ground truth."""

    def raw_inference(self, images: ImageList) -> list[dict[str, Any]]:
        """Per image, the outputs at network resolution: ``"instances"`` of image size
        ``images.image_sizes[i]`` (``pred_masks`` as Tensor[N, 1, M, M] box-relative
        probabilities), ``"sem_seg"`` as Tensor[C, Hp, Wp] over the padded image.

        By default `results_from_tensors` over `inference_tensors`."""
        sizes = torch.tensor(images.image_sizes, dtype=torch.int64, device=images.tensor.device).view(-1, 2)
        return self.results_from_tensors(self.inference_tensors(images.tensor, sizes), images.image_sizes)

    def inference_tensors(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensor-only inference core (see the class docstring)."""
        raise NotImplementedError(f"{type(self).__name__} has no tensor-only inference core (inference_tensors): "
                                  "implement it to export the model, or raw_inference for eager inference only")

    def instance_fields(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Extra `Instances` fields over all D detections of `inference_tensors`' outputs
        (e.g. ``pred_masks`` from ``mask_probs``); none by default."""
        return {}

    def results_from_tensors(self, outputs: dict[str, torch.Tensor], image_sizes: list[tuple[int, int]]
                             ) -> list[dict[str, Any]]:
        """`raw_inference`'s per-image results from `inference_tensors`' outputs (or an exported
        program's, e.g. onnxruntime's, as tensors): ``"instances"`` with ``pred_boxes``, ``scores``,
        ``pred_classes`` and `instance_fields`, and ``"sem_seg"`` when present."""
        per_image = None
        if "counts" in outputs:  # detections (a semantic segmentor has none)
            counts = [int(c) for c in outputs["counts"].tolist()]
            fields = {"pred_boxes": outputs["boxes"], "scores": outputs["scores"], "pred_classes": outputs["classes"],
                      **self.instance_fields(outputs)}
            per_image = {name: value.split(counts) for name, value in fields.items()}
        results = []
        for i, image_size in enumerate(image_sizes):
            result = {}
            if per_image is not None:
                values = {name: parts[i] for name, parts in per_image.items()}
                values["pred_boxes"] = Boxes(values["pred_boxes"])
                result["instances"] = Instances(image_size, **values)
            if "sem_seg" in outputs:
                result["sem_seg"] = outputs["sem_seg"][i]
            results.append(result)
        return results

    def normalize_padded(self, images: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """`preprocess_image` on tensors (for exported models): a padded batch of raw images
        Tensor[N, C, Hp, Wp] (0-255, in `input_format`; any padding values) -> normalised, with 0
        in the padding, as `preprocess_image` gives for the unpadded images."""
        x = (images - self.pixel_mean) / self.pixel_std
        rows = torch.arange(images.shape[-2], device=images.device)
        cols = torch.arange(images.shape[-1], device=images.device)
        inside = (rows[None, :, None] < image_sizes[:, 0, None, None]) & (cols[None, None, :] < image_sizes[:, 1, None, None])
        return torch.where(inside[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))

    def postprocess(self, results: list[dict[str, Any]], batched_inputs: list[dict[str, Any]],
                    image_sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """Rescale each image's raw results to its input's ``height`` x ``width`` (`postprocess_outputs`)."""
        outputs = []
        for result, inputs, image_size in zip(results, batched_inputs, image_sizes):
            height = int(inputs.get("height", image_size[0]))
            width = int(inputs.get("width", image_size[1]))
            outputs.append(postprocess_outputs(result, image_size, height, width))
        return outputs

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        """Move images to the model's device, normalise, pad into an ImageList.

        Padding follows ``backbone.padding_constraints`` (bottom/right) and is 0 after
        normalisation, i.e. the mean colour.
        """
        images = []
        channels = self.pixel_mean.shape[0]
        for x in batched_inputs:
            image = x["image"].to(self.device, non_blocking=True)
            if image.dim() != 3 or image.shape[0] != channels:
                raise ValueError(f"{type(self).__name__} expects 'image' as Tensor[{channels}, H, W], "
                                 f"got shape {tuple(image.shape)}")
            images.append((image - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, pad_value=0.0, **self.backbone.padding_constraints)

    def ground_truth(self, batched_inputs: list[dict[str, Any]], key: str = "instances") -> list[Instances]:
        """The inputs' `key` entries on the model's device."""
        return [x[key].to(self.device) for x in batched_inputs]

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters/buffers (inputs are moved there)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")
