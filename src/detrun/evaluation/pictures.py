"""Pictures of predictions and ground truth for the CLI tasks and the training report:
the data set's drawing style (names, colours, skeleton) and model outputs drawn on the originals."""
from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog, read_image
from detrun.utils.visualize import draw_predictions

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
    return {"class_names": meta.get("thing_classes"), "class_colors": meta.get("thing_colors"), "skeleton": skeleton}


def draw_outputs(inputs: list[dict], outputs: list[dict], style: dict[str, Any],
                 score_threshold: float = SCORE_THRESHOLD) -> list[Image.Image]:
    """Each input's original image (read again from ``file_name``, RGB) with its predicted
    ``instances`` scoring at least `score_threshold` drawn on it."""
    return [
        draw_predictions(read_image(inp["file_name"], "RGB", image_id=inp.get("image_id")), out["instances"],
                         score_threshold=score_threshold, **style)
        for inp, out in zip(inputs, outputs, strict=True)
    ]
