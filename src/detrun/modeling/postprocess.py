"""Turn network-resolution outputs into outputs at the caller's image size."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from detrun.ops import paste_masks
from detrun.structures import Boxes, Instances, Keypoints


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale detections from `results.image_size` to (output_height, output_width).

    Boxes (`pred_boxes`, or `proposal_boxes` for proposal-only models) are scaled per axis by
    output / input size, clipped to the output image, and objects whose box became empty are
    dropped (Detectron2's rule). `pred_keypoints` (Tensor[N, K, 3] of x, y, score, or `Keypoints`)
    are scaled the same way (not clipped). `pred_masks` (float probabilities Tensor[N, 1, M, M] relative
    to each box) are pasted with `detrun.ops.paste_masks` and thresholded at `mask_threshold`
    -> bool Tensor[N, output_height, output_width].

    Args:
        results: one image's detections at network input resolution.
        output_height, output_width: size of the image the caller wants results for, pixels.
        mask_threshold: probability at or above which a mask pixel is on.

    Returns:
        New Instances of image_size (output_height, output_width); `results` is not modified.
    """
    scale_x = output_width / results.image_size[1]
    scale_y = output_height / results.image_size[0]
    out = Instances((output_height, output_width), **results.get_fields())
    box_field = "pred_boxes" if out.has("pred_boxes") else "proposal_boxes"
    boxes = Boxes(out.get(box_field).tensor.clone())
    boxes.scale(scale_x, scale_y)
    boxes.clip(out.image_size)
    out.set(box_field, boxes)
    if out.has("pred_keypoints"):
        out.pred_keypoints = _scale_keypoints(out.pred_keypoints, scale_x, scale_y)
    out = out[boxes.nonempty()]
    if out.has("pred_masks"):
        out.pred_masks = paste_masks(out.pred_masks, out.get(box_field).tensor, out.image_size, mask_threshold)
    return out


def _scale_keypoints(keypoints: Tensor | Keypoints, scale_x: float, scale_y: float) -> Tensor | Keypoints:
    tensor = keypoints.tensor if isinstance(keypoints, Keypoints) else keypoints
    scaled = tensor.clone()
    scaled[..., 0] *= scale_x
    scaled[..., 1] *= scale_y
    return Keypoints(scaled) if isinstance(keypoints, Keypoints) else scaled


def sem_seg_postprocess(logits: Tensor, image_size: tuple[int, int], output_height: int, output_width: int) -> Tensor:
    """Per-class scores over the padded batch image -> scores at the caller's image size.

    Args:
        logits: Tensor[C, Hp, Wp], predicted over the padded image (Hp, Wp >= image_size).
        image_size: (h, w) of the image before padding, in network pixels.
        output_height, output_width: the size the caller wants, pixels.

    Returns:
        Tensor[C, output_height, output_width]: the padding cropped off, then bilinear resizing.
    """
    cropped = logits[:, : image_size[0], : image_size[1]]
    return F.interpolate(cropped[None], size=(output_height, output_width), mode="bilinear",
                         align_corners=False)[0]


def panoptic_postprocess(panoptic: tuple[Tensor, list[dict]], image_size: tuple[int, int], output_height: int,
                         output_width: int) -> tuple[Tensor, list[dict]]:
    """(int32 Tensor[Hp, Wp] segment ids, segments) -> ids at the caller's size (nearest), same segments."""
    ids, segments = panoptic
    cropped = ids[: image_size[0], : image_size[1]]
    resized = F.interpolate(cropped[None, None].float(), size=(output_height, output_width), mode="nearest")
    return resized[0, 0].to(torch.int32), segments


def postprocess_outputs(result: dict[str, Any], image_size: tuple[int, int], output_height: int,
                        output_width: int) -> dict[str, Any]:
    """Rescale one image's raw outputs (see `MetaArchitecture.raw_inference`) to the caller's size.

    ``"instances"`` go through `detector_postprocess`, ``"sem_seg"`` through `sem_seg_postprocess`,
    ``"panoptic_seg"`` through `panoptic_postprocess`; other keys are passed on unchanged.
    """
    rescale = {
        "instances": lambda v: detector_postprocess(v, output_height, output_width),
        "sem_seg": lambda v: sem_seg_postprocess(v, image_size, output_height, output_width),
        "panoptic_seg": lambda v: panoptic_postprocess(v, image_size, output_height, output_width),
    }
    return {key: rescale[key](value) if key in rescale else value for key, value in result.items()}
