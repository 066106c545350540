"""Draw detections on images with Pillow: boxes, class names and scores, translucent masks with
outlines, keypoints joined by their skeleton; semantic label maps and panoptic segmentations
(stuff tinted by class, things outlined and labelled).

`draw_instances`, `draw_sem_seg` and `draw_panoptic` take plain arrays; `draw_predictions`
(model outputs) and `draw_record` (data set ground truth) adapt the two usual sources to them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from detrun.structures import BoxMode
from detrun.structures.masks import decode_rle, polygons_to_bitmask

# Distinct, saturated colours (Tableau 10 and its lighter half); class k uses PALETTE[k % 20].
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
]
ImageLike = Image.Image | np.ndarray | torch.Tensor


def to_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image, a uint8 ndarray[H, W, 3] or a uint8 Tensor[3, H, W]."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"images to draw on must be uint8, got {array.dtype}")
    return Image.fromarray(array[..., :3] if array.ndim == 3 else array).convert("RGB")


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion of bool[H, W]; outside the image counts as background."""
    padded = np.pad(mask, 1)
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def _blend_masks(image: Image.Image, masks: np.ndarray, colors: Sequence[tuple], alpha: float, width: int) -> Image.Image:
    """Fill each mask with its colour at opacity `alpha` and draw its outline `width` px thick."""
    pixels = np.asarray(image, dtype=np.float32).copy()
    for mask, color in zip(masks, colors):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if not len(rows):
            continue
        # Work inside the mask's bounding box: outside it there is nothing to paint or erode.
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        mask, region = mask[box], pixels[box]
        color = np.asarray(color, dtype=np.float32)
        region[mask] = region[mask] * (1 - alpha) + color * alpha
        inner = mask
        for _ in range(width):
            inner = _erode(inner)
        region[mask & ~inner] = color
    return Image.fromarray(pixels.round().astype(np.uint8))


def _text_color(color: tuple) -> tuple:
    """Black on light backgrounds, white on dark (ITU-R BT.601 luma)."""
    return (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)


def draw_instances(
    image: ImageLike,
    *,
    boxes: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    masks: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    colors: Sequence[tuple] | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
    alpha: float = 0.5,
    keypoint_threshold: float = 0.05,
) -> Image.Image:
    """Draw N objects on a copy of `image` and return it.

    Args:
        image: RGB uint8, see `to_pil`.
        boxes: float[N, 4] XYXY pixels.
        labels: N strings written above the boxes (e.g. "dog 87%").
        masks: bool[N, H, W] at the image's size, filled translucent with an outline.
        keypoints: float[N, K, 3] (x, y, visibility or score); points with third value
            <= `keypoint_threshold` are not drawn.
        colors: one RGB tuple per object; default `PALETTE` by index.
        skeleton: keypoint index pairs (i, j) joined by a line.
        alpha: mask fill opacity in [0, 1].
    """
    canvas = to_pil(image)
    sizes = [len(x) for x in (boxes, labels, masks, keypoints) if x is not None]
    num = max(sizes, default=0)
    if colors is None:
        colors = [PALETTE[i % len(PALETTE)] for i in range(num)]
    scale = max(min(canvas.size) / 400, 0.5)  # line widths and font grow with the picture
    line = max(1, round(2 * scale))
    if masks is not None and len(masks):
        masks = np.asarray(masks, dtype=bool)
        if masks.shape[1:] != (canvas.height, canvas.width):
            raise ValueError(f"masks of shape {masks.shape[1:]} don't match the image ({canvas.height}, {canvas.width})")
        canvas = _blend_masks(canvas, masks, colors, alpha, line)
    draw = ImageDraw.Draw(canvas)
    if boxes is not None:
        for box, color in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), colors):
            x0, y0, x1, y1 = (float(v) for v in box)
            # Pillow refuses inverted boxes; an empty one still shows where the detection is
            draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=tuple(color), width=line)
    if keypoints is not None:
        radius = max(2, round(3 * scale))
        for points, color in zip(np.asarray(keypoints, dtype=np.float64), colors):
            shown = points[:, 2] > keypoint_threshold
            for i, j in skeleton:
                if shown[i] and shown[j]:
                    draw.line([tuple(points[i, :2]), tuple(points[j, :2])], fill=tuple(color), width=line)
            for x, y, _ in points[shown]:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=tuple(color), outline=(255, 255, 255))
    if labels is not None and boxes is not None:
        _draw_labels(draw, np.asarray(boxes).reshape(-1, 4)[:, :2], labels, colors, scale)
    return canvas


def _draw_labels(draw: ImageDraw.ImageDraw, corners: np.ndarray, labels: Sequence[str], colors: Sequence[tuple],
                 scale: float) -> None:
    """Each label on a box of its colour, sitting on top of the point (x, y) (a box's top-left corner)."""
    font = ImageFont.load_default(size=max(10, round(14 * scale)))
    for (cx, cy), label, color in zip(corners, labels, colors):
        x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
        x, y = float(cx), max(float(cy) - (y1 - y0) - 2, 0)
        draw.rectangle([x, y, x + x1 - x0 + 4, y + y1 - y0 + 2], fill=tuple(color))
        draw.text((x + 2 - x0, y + 1 - y0), label, fill=_text_color(color), font=font)


def _numpy(value: Any) -> np.ndarray:
    """ndarray of a Tensor or of a structure holding one in ``.tensor`` (Boxes, Keypoints, BitMasks)."""
    return getattr(value, "tensor", value).detach().numpy()


def _name(names: Sequence[str] | None, k: int) -> str:
    return names[k] if names is not None and 0 <= k < len(names) else str(k)


def _class_colors(classes: Sequence[int], class_colors: Sequence[Sequence[int]] | None) -> list[tuple]:
    """One colour per object from its class: `class_colors[k]` when given, else `PALETTE`."""
    if class_colors:
        return [tuple(int(v) for v in class_colors[c % len(class_colors)]) for c in classes]
    return [PALETTE[c % len(PALETTE)] for c in classes]


def draw_predictions(
    image: ImageLike,
    instances: Any,
    *,
    class_names: Sequence[str] | None = None,
    class_colors: Sequence[Sequence[int]] | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
    score_threshold: float = 0.0,
) -> Image.Image:
    """Draw a model's `Instances` (pred_boxes, scores, pred_classes, optional pred_masks,
    pred_keypoints) whose score is at least `score_threshold`; class k is named class_names[k]
    and drawn in class_colors[k] (RGB; default `PALETTE`)."""
    instances = instances.to("cpu")
    instances = instances[instances.scores >= score_threshold]
    fields = instances.get_fields()
    classes = fields["pred_classes"].tolist()
    return draw_instances(
        image,
        boxes=_numpy(fields["pred_boxes"]),
        labels=[f"{_name(class_names, c)} {s:.0%}" for c, s in zip(classes, fields["scores"].tolist())],
        masks=_numpy(fields["pred_masks"]) if "pred_masks" in fields else None,
        keypoints=_numpy(fields["pred_keypoints"]) if "pred_keypoints" in fields else None,
        colors=_class_colors(classes, class_colors),
        skeleton=skeleton,
    )


def _record_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, dict):  # RLE; uncompressed counts come as a list
        import pycocotools.mask as mask_util

        rle = mask_util.frPyObjects(segmentation, height, width) if isinstance(segmentation["counts"], list) else segmentation
        return decode_rle(rle).astype(bool)
    return polygons_to_bitmask(segmentation, height, width)


def _stuff_color(label: int, stuff_colors: Sequence[Sequence[int]] | None) -> tuple:
    if stuff_colors and 0 <= label < len(stuff_colors):
        return tuple(int(v) for v in stuff_colors[label])
    return PALETTE[(label + 10) % len(PALETTE)]


def draw_sem_seg(
    image: ImageLike,
    labels: np.ndarray,
    *,
    stuff_classes: Sequence[str] | None = None,
    stuff_colors: Sequence[Sequence[int]] | None = None,
    alpha: float = 0.5,
    ignore_label: int = 255,
    skip: Sequence[int] = (),
    show_names: bool = True,
) -> Image.Image:
    """Tint each semantic class's pixels with its colour at opacity `alpha` (stuff_colors[k], else
    `PALETTE`) on a copy of `image`, and write its name (stuff_classes[k]) on its largest part's
    top-left corner when `show_names`. Pixels of `ignore_label` and of classes in `skip` stay as they are.

    `labels`: int [H, W] at the image's size.
    """
    canvas = to_pil(image)
    labels = np.asarray(labels)
    if labels.shape != (canvas.height, canvas.width):
        raise ValueError(f"label map of shape {labels.shape} doesn't match the image ({canvas.height}, {canvas.width})")
    classes = [int(c) for c in np.unique(labels) if c != ignore_label and c not in skip]
    colors = [_stuff_color(c, stuff_colors) for c in classes]
    masks = np.stack([labels == c for c in classes]) if classes else np.zeros((0, *labels.shape), bool)
    canvas = _blend_masks(canvas, masks, colors, alpha, 0)
    if show_names and classes:
        corners = [_mask_corner(m) for m in masks]
        _draw_labels(ImageDraw.Draw(canvas), np.array(corners, dtype=np.float64), [_name(stuff_classes, c) for c in classes],
                     colors, max(min(canvas.size) / 400, 0.5))
    return canvas


def _mask_corner(mask: np.ndarray) -> tuple[float, float]:
    """Where a region's label goes: just below the top-left of its pixels' box (so the label,
    drawn above the point, stays on the region)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(min(ys.min() + 14, mask.shape[0] - 1))


def draw_panoptic(
    image: ImageLike,
    segment_ids: np.ndarray,
    segments: Sequence[dict],
    *,
    class_names: Sequence[str] | None = None,
    class_colors: Sequence[Sequence[int]] | None = None,
    stuff_classes: Sequence[str] | None = None,
    stuff_colors: Sequence[Sequence[int]] | None = None,
    alpha: float = 0.5,
) -> Image.Image:
    """Draw a panoptic segmentation: stuff segments tinted with their class colour, thing segments
    filled translucent in their class colour with an outline and their class name (and score).

    Args:
        segment_ids: int [H, W] at the image's size (0: void, left as it is).
        segments: ``{"id", "category_id", "isthing"}`` (+ ``"score"``, ``"iscrowd"``) with contiguous
            category ids: a thing's index into `class_names`, a stuff's into `stuff_classes`.
    """
    canvas = to_pil(image)
    segment_ids = np.asarray(segment_ids)
    stuff = np.full(segment_ids.shape, 255, dtype=np.int64)
    things = []
    for seg in segments:
        mask = segment_ids == int(seg["id"])
        if not mask.any():
            continue
        if seg.get("isthing"):
            things.append((seg, mask))
        else:
            stuff[mask] = int(seg["category_id"])
    canvas = draw_sem_seg(canvas, stuff, stuff_classes=stuff_classes, stuff_colors=stuff_colors, alpha=alpha)
    if not things:
        return canvas
    classes = [int(seg["category_id"]) for seg, _ in things]
    colors = _class_colors(classes, class_colors)
    canvas = draw_instances(canvas, masks=np.stack([m for _, m in things]), colors=colors, alpha=alpha)
    labels = [_name(class_names, c) + (f" {seg['score']:.0%}" if "score" in seg else "")
              + (" (crowd)" if seg.get("iscrowd") else "") for c, (seg, _) in zip(classes, things)]
    corners = [(float(np.nonzero(m)[1].min()), float(np.nonzero(m)[0].min())) for _, m in things]
    _draw_labels(ImageDraw.Draw(canvas), np.array(corners), labels, colors, max(min(canvas.size) / 400, 0.5))
    return canvas


def draw_record(
    image: ImageLike,
    record: dict,
    *,
    class_names: Sequence[str] | None = None,
    class_colors: Sequence[Sequence[int]] | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
    stuff_classes: Sequence[str] | None = None,
    stuff_colors: Sequence[Sequence[int]] | None = None,
) -> Image.Image:
    """Draw a data set record's ground truth (boxes, class names, masks, keypoints) on `image`,
    which must be the record's image at its original size. Crowd regions are labelled "(crowd)".

    A panoptic record (``pan_seg_file_name`` + ``segments_info``) is drawn as its panoptic
    segmentation (`draw_panoptic`); a record with only ``sem_seg_file_name`` gets its label map
    tinted (`draw_sem_seg`) under the instances.
    """
    canvas = to_pil(image)
    expected = (record.get("height", canvas.height), record.get("width", canvas.width))
    if expected != (canvas.height, canvas.width):
        raise ValueError(f"the image ({canvas.height}, {canvas.width}) and the record of {record.get('file_name')!r} "
                         f"{expected} don't match: draw ground truth on the image at its original size")
    if record.get("pan_seg_file_name") and "segments_info" in record:
        from detrun.data.datasets.coco_panoptic import read_panoptic_png

        return draw_panoptic(canvas, read_panoptic_png(record["pan_seg_file_name"]), record["segments_info"],
                             class_names=class_names, class_colors=class_colors, stuff_classes=stuff_classes,
                             stuff_colors=stuff_colors)
    if record.get("sem_seg_file_name"):
        from detrun.data.image_io import read_label_map

        canvas = draw_sem_seg(canvas, read_label_map(record["sem_seg_file_name"]), stuff_classes=stuff_classes,
                              stuff_colors=stuff_colors)
    anns = record.get("annotations", [])
    boxes = np.array([BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]).reshape(-1, 4)
    classes = [a["category_id"] for a in anns]
    masks = None
    if anns and all("segmentation" in a for a in anns):
        masks = np.stack([_record_mask(a["segmentation"], canvas.height, canvas.width) for a in anns])
    keypoints = None
    if anns and all("keypoints" in a for a in anns):
        keypoints = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
    return draw_instances(
        canvas,
        boxes=boxes,
        labels=[_name(class_names, c) + (" (crowd)" if a.get("iscrowd") else "") for c, a in zip(classes, anns)],
        masks=masks,
        keypoints=keypoints,
        colors=_class_colors(classes, class_colors),
        skeleton=skeleton,
    )


def image_grid(images: Sequence[Image.Image], *, columns: int = 4, tile: int = 320, gap: int = 4) -> Image.Image:
    """Tile `images` row by row, each scaled to fit a `tile`×`tile` box (aspect kept), on white."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * (tile + gap) - gap, rows * (tile + gap) - gap), (255, 255, 255))
    for k, image in enumerate(images):
        thumb = ImageOps.contain(image, (tile, tile))
        x, y = (k % columns) * (tile + gap), (k // columns) * (tile + gap)
        grid.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
    return grid
