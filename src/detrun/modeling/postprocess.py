"""Turn network-resolution detections into detections at the caller's image size."""
from __future__ import annotations

from detrun.structures import Instances


def detector_postprocess(
    instances: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale detections from `instances.image_size` to (output_height, output_width).

    Boxes are scaled per axis and clipped to the output size; `pred_masks` (float probabilities
    Tensor[N, 1, M, M] in box coordinates) are pasted into the image with `detrun.ops.paste_masks`
    and thresholded at `mask_threshold` -> bool Tensor[N, output_height, output_width].
    """
    raise NotImplementedError
