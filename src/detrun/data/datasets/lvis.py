"""LVIS v1 data sets: COCO-format JSON plus LVIS's federated annotation fields, → records.

LVIS v1 (Gupta et al., 2019) annotates COCO 2017 images with 1203 categories. It differs from
a COCO instances file in:

- images name no ``file_name``; their ``coco_url`` (``.../train2017/000000391895.jpg``) says
  which COCO folder holds them, so the image root is the folder holding ``train2017/`` and
  ``val2017/`` (LVIS v1's val images come from both);
- images list ``neg_category_ids`` (verified absent) and ``not_exhaustive_category_ids``
  (present but not every instance annotated); records keep both, as contiguous class ids;
- categories carry ``frequency``: "r" (rare, 1-10 training images), "c" (common, 11-100) or
  "f" (frequent, >100); metadata ``frequency_groups`` lists the contiguous ids of each group.

Parsing and checking is COCO's (`load_coco_json`); this module adds only what LVIS adds.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from pycocotools.coco import COCO

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DataError, ProblemLog
from .coco import _CocoLoader, _default_colors_of, default_colors, load_coco_json, read_coco

FREQUENCIES = ("r", "c", "f")
# Per-image lists of category ids (the file's ids) that federated evaluation reads.
IMAGE_CATEGORY_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def lvis_image_path(image: dict, image_root: str | os.PathLike) -> str:
    """File of an LVIS image entry: ``image_root/<split folder>/<name>`` from its ``coco_url``
    (LVIS v1), else ``image_root/file_name``; "" when the entry has neither."""
    url = image.get("coco_url")
    if isinstance(url, str) and url.count("/") >= 1:
        folder, name = url.rsplit("/", 2)[-2:]
        return os.path.join(image_root, folder, name)
    file_name = image.get("file_name")
    return os.path.join(image_root, file_name) if file_name else ""


def lvis_categories_metadata(coco: COCO, json_file: str | os.PathLike) -> dict:
    """thing_classes, thing_dataset_id_to_contiguous_id and frequency_groups ({"r"|"c"|"f": [contiguous
    ids]}) of an LVIS file already read with `read_coco`. A category without a valid frequency is a DataError."""
    cats = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    groups: dict[str, list[int]] = {f: [] for f in FREQUENCIES}
    for i, cat in enumerate(cats):
        if cat.get("frequency") not in groups:
            raise DataError(f"annotation file '{json_file}': category id {cat.get('id')} ({cat.get('name')!r}) has "
                            f"frequency {cat.get('frequency')!r}, not one of {list(FREQUENCIES)}; is it an LVIS file?")
        groups[cat["frequency"]].append(i)
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
        "frequency_groups": groups,
    }


def load_lvis_json(json_file: str | os.PathLike, image_root: str | os.PathLike, *, dataset_name: str | None = None,
                   on_error: str = "raise", log: ProblemLog | None = None, not_found_hint: str = "") -> list[dict]:
    """Load an LVIS annotation file into records.

    Args:
        json_file: the LVIS JSON (e.g. ``lvis_v1_val.json``).
        image_root: the folder holding COCO's ``train2017/`` and ``val2017/`` (see `lvis_image_path`).
        dataset_name: if given, fill ``MetadataCatalog.get(dataset_name)`` with thing_classes,
            thing_dataset_id_to_contiguous_id, frequency_groups, thing_colors, json_file, image_root.
        on_error, log, not_found_hint: as `load_coco_json`; bad annotations and bad per-image
            category lists are problems naming the file and the annotation or image id.
    Returns:
        COCO's records (contiguous ``category_id``; annotations have no ``iscrowd`` in LVIS, so 0)
        plus ``neg_category_ids`` and ``not_exhaustive_category_ids``: lists of contiguous class ids.
    """
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    coco = read_coco(json_file, not_found_hint=not_found_hint)
    meta = lvis_categories_metadata(coco, json_file)
    id_map = meta["thing_dataset_id_to_contiguous_id"]

    def image_fields(image: dict, root: str | os.PathLike) -> dict:
        fields = {"file_name": lvis_image_path(image, root)}
        for key in IMAGE_CATEGORY_LISTS:
            ids = image.get(key)
            if not isinstance(ids, list):
                log.add("bad LVIS image entry", json_file, f"'{key}' must be a list of category ids, got {ids!r}",
                        image_id=image.get("id"))
                ids = []
            unknown = [c for c in ids if c not in id_map]
            if unknown:
                log.add("unknown category id", json_file, f"'{key}' lists {unknown}, not in the file's categories",
                        image_id=image.get("id"))
            fields[key] = [id_map[c] for c in ids if c in id_map]
        return fields

    records = load_coco_json(json_file, image_root, log=log, coco=coco, image_fields=image_fields,
                             not_found_hint=not_found_hint)
    if own_log:
        log.warn_summary(str(json_file))
    if dataset_name is not None:
        metadata = MetadataCatalog.get(dataset_name)
        metadata.set(**meta, evaluator_type="lvis")
        if metadata.get("thing_colors") is None:
            metadata.set(thing_colors=default_colors(len(meta["thing_classes"])))
        if metadata.get("json_file") is None:  # registered sets already have it (maybe as a lazy path)
            metadata.set(json_file=str(json_file), image_root=str(image_root))
    return records


def register_lvis_instances(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike, *,
                            metadata: dict | None = None, on_error: str = "raise", not_found_hint: str = "",
                            overwrite: bool = False) -> None:
    """Register an LVIS-format data set as `name` (read on first use).

    ``MetadataCatalog.get(name)`` gets json_file, image_root, evaluator_type="lvis" and `metadata`;
    thing_classes, the category-id mapping and frequency_groups come from the file when first read.
    """
    DatasetCatalog.register(name, _LvisLoader(json_file, image_root, name, on_error, not_found_hint),
                            overwrite=overwrite)
    meta = MetadataCatalog.get(name)
    if overwrite:
        meta.clear()
    meta.set(json_file=json_file, image_root=image_root, evaluator_type="lvis", **(metadata or {}))
    # Partials of module functions, not lambdas: metadata is pickled into spawned processes (`registrations`).
    for key in ("thing_classes", "thing_dataset_id_to_contiguous_id", "frequency_groups"):
        meta.set_lazy(key, functools.partial(_category_metadata, name, key))
    meta.set_lazy("thing_colors", functools.partial(_default_colors_of, name))


@functools.lru_cache(maxsize=4)
def _categories_of_file(path: str, mtime: float) -> dict:
    # LVIS v1 train is a 1 GB file: read once for all the lazy metadata keys (mtime: a rewritten file is read again)
    return lvis_categories_metadata(read_coco(path), path)


def _category_metadata(name: str, key: str):
    path = os.fspath(MetadataCatalog.get(name).json_file)
    return _categories_of_file(path, Path(path).stat().st_mtime if Path(path).is_file() else 0.0)[key]


class _LvisLoader(_CocoLoader):
    """The registered function of an LVIS data set."""

    load = staticmethod(load_lvis_json)
