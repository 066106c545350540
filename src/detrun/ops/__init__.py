"""Detection ops shaped like `torchvision.ops`, each with triton / torchvision / torch backends.

Models call these and never choose a backend: `detrun.ops.dispatch` decides (argument
`backend=`, else env var DETRUN_OPS_BACKEND, else automatic by device and dtype, resolved once
per process). Each runs as a registered op, `torch.ops.detrun.<name>` (`detrun.ops.library`:
fake kernels for torch.export / torch.compile, autograd for roi_align).
`python -m detrun.ops` prints which backend each op uses here.
"""
from .boxes import box_area, box_convert, box_iou, clip_boxes_to_image, nonempty_boxes, remove_small_boxes
from . import library  # noqa: F401  (registers torch.ops.detrun.*)
from .dispatch import BACKENDS, ENV_VAR, OpsBackendError
from .nms import batched_nms, nms
from .paste_masks import paste_masks
from .roi_align import RoIAlign, roi_align

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "OpsBackendError",
    "RoIAlign",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "nms",
    "nonempty_boxes",
    "paste_masks",
    "remove_small_boxes",
    "roi_align",
]
