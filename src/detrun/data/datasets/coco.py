"""COCO-format data sets: JSON (through pycocotools) → records, and registration by name.

COCO category ids (any integers) become contiguous ids 0..C-1 in id order; the mapping is kept
in ``MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id`` so evaluators can map back.
Keypoints get +0.5 on x and y: COCO stores them as integer pixel indices, records use
continuous coordinates (pixel i covers [i, i+1)); evaluators subtract 0.5 when writing results.
"""
from __future__ import annotations

import colorsys
import contextlib
import functools
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pycocotools.coco import COCO

from detrun.structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DataError, DatasetNotFoundError, ProblemLog
from ..validation import validate_records


def read_coco(json_file: str | os.PathLike, *, not_found_hint: str = "") -> COCO:
    """Open an annotation file with pycocotools, turning its failures into errors that name the file."""
    path = Path(json_file)
    if not path.is_file():
        raise DatasetNotFoundError(f"annotation file '{path}' does not exist.{not_found_hint}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            coco = COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"annotation file '{path}' is not valid JSON: {exc}") from exc
    except (KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise DataError(
            f"annotation file '{path}' is not in COCO format (needs 'images', 'annotations', 'categories' lists "
            f"whose entries have 'id', and annotations with 'image_id'): {type(exc).__name__}: {exc}"
        ) from exc
    for key in ("images", "categories"):
        if not isinstance(coco.dataset.get(key), list):
            raise DataError(f"annotation file '{path}' has no '{key}' list; it is not a COCO annotation file")
    return coco


def keypoint_flip_map_from_names(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of names that swap under a horizontal flip: 'left' ↔ 'right' inside the name."""
    pairs = []
    for name in names:
        if "left" in name:
            other = name.replace("left", "right")
            if other in names:
                pairs.append((name, other))
    return pairs


def default_colors(num_classes: int) -> list[list[int]]:
    """Distinct RGB colours (0-255), one per class: hues stepped by the golden ratio so neighbours differ."""
    colors = []
    for i in range(num_classes):
        h = (i * 0.618033988749895) % 1.0
        rgb = colorsys.hsv_to_rgb(h, 0.75, 0.95)
        colors.append([int(round(255 * c)) for c in rgb])
    return colors


def load_coco_json(json_file: str | os.PathLike, image_root: str | os.PathLike, *, dataset_name: str | None = None,
                   on_error: str = "raise", log: ProblemLog | None = None, not_found_hint: str = "",
                   coco: COCO | None = None, image_fields: Callable[[dict, str | os.PathLike], dict] | None = None,
                   ) -> list[dict]:
    """Load a COCO instances/keypoints annotation file into records.

    Args:
        json_file: the annotation JSON.
        image_root: folder the images' ``file_name`` entries are relative to.
        dataset_name: if given, fill ``MetadataCatalog.get(dataset_name)`` with thing_classes,
            thing_dataset_id_to_contiguous_id, keypoint_names/flip map (if any), json_file, image_root.
        on_error: "raise" (first bad annotation raises DataError naming file and annotation id) or
            "skip" (drop it, count it, one warning).
        log: a ProblemLog to collect problems into (then `on_error` is ignored; used by check_data).
        coco: `json_file` already read with `read_coco` (a caller that needs the file too reads it once).
        image_fields: (image entry, image_root) → record fields to add or override (LVIS: the file
            name from ``coco_url``, per-image category lists).
    Returns:
        list[dict] records sorted by image id; annotations with bbox (XYWH_ABS), bbox_mode,
        category_id (contiguous), segmentation, keypoints, iscrowd, id.
    """
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    json_file = Path(json_file)
    if coco is None:
        coco = read_coco(json_file, not_found_hint=not_found_hint)
    if not Path(image_root).is_dir():
        raise DatasetNotFoundError(f"image folder '{image_root}' (for annotation file '{json_file}') does not exist.{not_found_hint}")
    src = str(json_file)

    cats = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    id_map = {c["id"]: i for i, c in enumerate(cats)}
    keypoint_names = next((list(c["keypoints"]) for c in cats if c.get("keypoints")), None)

    for dup, n in Counter(e.get("id") for e in coco.dataset["images"]).items():
        if n > 1:
            log.add("duplicate image id", src, f"{n} images share id {dup}", image_id=dup)
    for dup, n in Counter(a.get("id") for a in coco.dataset.get("annotations", [])).items():
        if n > 1:
            log.add("duplicate annotation id", src, f"{n} annotations share id {dup}", annotation_id=dup)

    records = []
    for img_id in sorted(coco.imgs):
        img = coco.imgs[img_id]
        record = {
            "file_name": os.path.join(image_root, img.get("file_name", "")),
            "height": img.get("height"),
            "width": img.get("width"),
            "image_id": img_id,
        }
        if image_fields is not None:
            record.update(image_fields(img, image_root))
        anns = []
        for ann in coco.imgToAnns.get(img_id, []):
            if ann.get("category_id") not in id_map:
                log.add("unknown category id", src, f"category_id {ann.get('category_id')!r} is not in the file's "
                        f"categories {sorted(id_map)}", image_id=img_id, annotation_id=ann.get("id"))
                continue
            out = {
                "bbox": ann.get("bbox"),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": id_map[ann["category_id"]],
                "iscrowd": ann.get("iscrowd", 0),
                "id": ann.get("id"),
            }
            if "segmentation" in ann:
                out["segmentation"] = ann["segmentation"]
            if "keypoints" in ann:
                out["keypoints"] = [v + 0.5 if i % 3 != 2 else v for i, v in enumerate(ann["keypoints"])]
            anns.append(out)
        record["annotations"] = anns
        records.append(record)
    orphans = [a for a in coco.dataset.get("annotations", []) if a.get("image_id") not in coco.imgs]
    for ann in orphans:
        log.add("annotation of unknown image", src, f"image_id {ann.get('image_id')!r} is not in 'images'",
                annotation_id=ann.get("id"))

    records = validate_records(records, source=src, log=log, num_classes=len(cats),
                               num_keypoints=len(keypoint_names) if keypoint_names else None)
    if own_log:
        log.warn_summary(src)

    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        meta.set(thing_classes=[c["name"] for c in cats], thing_dataset_id_to_contiguous_id=id_map,
                 evaluator_type="coco")
        if meta.get("thing_colors") is None:
            meta.set(thing_colors=default_colors(len(cats)))
        if meta.get("json_file") is None:  # registered sets already have it (maybe as a lazy path)
            meta.set(json_file=str(json_file), image_root=str(image_root))
        if keypoint_names:
            meta.set(keypoint_names=keypoint_names)
            if meta.get("keypoint_flip_map") is None:
                meta.set(keypoint_flip_map=keypoint_flip_map_from_names(keypoint_names))
    return records


def categories_metadata(json_file: str | os.PathLike) -> dict:
    """thing_classes and thing_dataset_id_to_contiguous_id read from an annotation file (no images touched)."""
    cats = sorted(read_coco(json_file).dataset["categories"], key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def register_coco_instances(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike, *,
                            metadata: dict | None = None, on_error: str = "raise", not_found_hint: str = "",
                            overwrite: bool = False) -> None:
    """Register a COCO-format data set (instances, and keypoints if the file has them) as `name`.

    Nothing is read until the data set is used. ``MetadataCatalog.get(name)`` gets json_file,
    image_root, evaluator_type="coco" and `metadata`; thing_classes and the category-id mapping
    come from the file (read on first use).
    """
    DatasetCatalog.register(
        name,
        _CocoLoader(json_file, image_root, name, on_error, not_found_hint),
        overwrite=overwrite,
    )
    meta = MetadataCatalog.get(name)
    if overwrite:
        meta.clear()
    meta.set(json_file=json_file, image_root=image_root, evaluator_type="coco", **(metadata or {}))
    # Partials of module functions, not lambdas: metadata is pickled into spawned processes (`registrations`).
    for key in ("thing_classes", "thing_dataset_id_to_contiguous_id"):
        meta.set_lazy(key, functools.partial(_category_metadata, name, key))
    meta.set_lazy("thing_colors", functools.partial(_default_colors_of, name))


def _category_metadata(name: str, key: str):
    return categories_metadata(MetadataCatalog.get(name).json_file)[key]


def _default_colors_of(name: str) -> list[list[int]]:
    return default_colors(len(MetadataCatalog.get(name).thing_classes))


class _CocoLoader:
    """The registered function of a COCO data set (a class, not a closure, so it pickles); formats
    read like COCO's (LVIS) subclass it with their own `load`."""

    load = staticmethod(load_coco_json)

    def __init__(self, json_file, image_root, name, on_error, not_found_hint):
        self.args = (json_file, image_root)
        self.name, self.on_error, self.not_found_hint = name, on_error, not_found_hint

    def __call__(self, on_error: str | None = None) -> list[dict]:
        return self.load(*self.args, dataset_name=self.name, on_error=on_error or self.on_error,
                         not_found_hint=self.not_found_hint)
