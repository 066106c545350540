"""Pictures of predictions and ground truth for the CLI tasks and the training report:
the data set's drawing style (names, colours, skeleton) and model outputs drawn on the originals."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog, read_image
from detrun.utils.visualize import draw_panoptic, draw_predictions, draw_sem_seg

logger = logging.getLogger(__name__)

# Drawn detections need a cut-off (a model returns up to 100 per image, mostly low-score);
# Detectron2's demo uses 0.5 too. Saved prediction JSONs keep everything.
SCORE_THRESHOLD = 0.5


def drawing_style(dataset_name: str | None) -> dict[str, Any]:
    """``class_names``, ``class_colors`` and keypoint ``skeleton`` from a data set's metadata.

    The skeleton comes from Detectron2-style ``keypoint_connection_rules`` ([(name_a, name_b,
    colour), ...]) with ``keypoint_names``. An unregistered or unnamed data set gives an empty
    style (classes are then labelled by index).
    """
    if not dataset_name or dataset_name not in DatasetCatalog:
        logger.warning("No metadata for data set %r: pictures label classes by index", dataset_name)
        return {}
    meta = MetadataCatalog.get(dataset_name)
    names = list(meta.get("keypoint_names") or [])
    rules = meta.get("keypoint_connection_rules") or []
    skeleton = [(names.index(a), names.index(b)) for a, b, *_ in rules if a in names and b in names]
    style = {"class_names": meta.get("thing_classes"), "class_colors": meta.get("thing_colors"), "skeleton": skeleton}
    if meta.get("stuff_classes"):
        style.update(stuff_classes=meta.get("stuff_classes"), stuff_colors=meta.get("stuff_colors"))
    return style


def draw_outputs(inputs: list[dict], outputs: list[dict], style: dict[str, Any],
                 score_threshold: float = SCORE_THRESHOLD) -> list[Image.Image]:
    """Each input's original image (read again from ``file_name``, RGB) with its outputs drawn
    (see `draw_output`)."""
    return [draw_output(read_image(inp["file_name"], "RGB", image_id=inp.get("image_id")), out, style, score_threshold)
            for inp, out in zip(inputs, outputs, strict=True)]


def draw_output(image: np.ndarray, output: dict, style: dict[str, Any],
                score_threshold: float = SCORE_THRESHOLD) -> Image.Image:
    """An RGB uint8 image [H, W, 3] with one model output drawn: the ``panoptic_seg`` if there is
    one (stuff tinted, things outlined and labelled), else the ``sem_seg`` argmax tinted under the
    predicted ``instances`` scoring at least `score_threshold`; `style` from `drawing_style`."""
    things = {k: style[k] for k in ("class_names", "class_colors") if k in style}
    stuff = {k: style[k] for k in ("stuff_classes", "stuff_colors") if k in style}
    if "panoptic_seg" in output:
        ids, segments = output["panoptic_seg"]
        return draw_panoptic(image, ids.cpu().numpy(), segments, **things, **stuff)
    if "sem_seg" in output:
        image = draw_sem_seg(image, output["sem_seg"].argmax(dim=0).cpu().numpy(), **stuff)
    if "instances" in output:
        image = draw_predictions(image, output["instances"], score_threshold=score_threshold,
                                 **{k: v for k, v in style.items() if k not in stuff})
    return image if isinstance(image, Image.Image) else Image.fromarray(image)
