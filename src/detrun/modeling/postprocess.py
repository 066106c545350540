"""Turn network-resolution detections into detections at the caller's image size."""
from __future__ import annotations

from detrun.ops import paste_masks
from detrun.structures import Boxes, Instances


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale detections from `results.image_size` to (output_height, output_width).

    Boxes (`pred_boxes`, or `proposal_boxes` for proposal-only models) are scaled per axis by
    output / input size, clipped to the output image, and objects whose box became empty are
    dropped (Detectron2's rule). `pred_masks` (float probabilities Tensor[N, 1, M, M] relative
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
    out = out[boxes.nonempty()]
    if out.has("pred_masks"):
        out.pred_masks = paste_masks(out.pred_masks, out.get(box_field).tensor, out.image_size, mask_threshold)
    return out
