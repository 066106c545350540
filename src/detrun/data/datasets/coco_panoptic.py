"""COCO panoptic segmentation in Detectron2's "separated" layout (what Panoptic FPN trains on).

A panoptic set is three sources over one image folder:

- the instance annotations (``instances_*.json``, COCO format): the things, as records' ``annotations``;
- the panoptic PNGs + JSON (``panoptic_*.json``, ``panoptic_*/``): each pixel's segment id is
  ``R + 256·G + 256²·B`` (0: void, unlabelled), described in the image's ``segments_info``
  (``id``, ``category_id``, ``iscrowd``, ``area``, ``bbox``); categories carry ``isthing``;
- semantic label maps derived from the panoptic PNGs once and cached (``panoptic_semseg_*/``,
  one 8-bit PNG per image): every thing pixel is class 0 ("things"), stuff category k (in id
  order) is class k + 1, void is 255 (ignored). This is Detectron2's
  ``prepare_panoptic_fpn.py`` output, so a folder prepared for Detectron2 can be reused.

Records then carry ``sem_seg_file_name``, ``pan_seg_file_name`` and ``segments_info`` (with
``category_id`` contiguous: a thing's index into thing_classes, a stuff's into stuff_classes,
and ``isthing``). Metadata: ``stuff_classes`` (``["things", <stuff names>...]``),
``stuff_dataset_id_to_contiguous_id`` (stuff category id → 1..S), ``panoptic_json``,
``panoptic_root``, ``sem_seg_root`` and ``ignore_label`` 255 (``evaluator_type`` stays
"coco": recipes list their evaluators, nothing dispatches on it).
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DataError, DatasetNotFoundError, ProblemLog
from .coco import default_colors, load_coco_json, register_coco_instances

IGNORE_LABEL = 255
THINGS_LABEL = 0  # every thing pixel in the semantic maps (the "things" stuff class)
# Marks a finished semantic-map folder (written last); see `ensure_semantic_maps`.
SEM_SEG_DONE = "done.json"


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids of a panoptic PNG: uint8 [H, W, 3] RGB → int64 [H, W] = R + 256·G + 256²·B."""
    color = np.asarray(color)
    if color.ndim == 2:  # a grey PNG: ids < 256
        return color.astype(np.int64)
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of `rgb2id`: int [H, W] segment ids (< 256³) → uint8 [H, W, 3]."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def read_panoptic_png(file_name: str | os.PathLike) -> np.ndarray:
    """int64 [H, W] segment ids of a panoptic PNG (DataError naming the file if it can't be read)."""
    if not os.path.isfile(file_name):
        raise DataError(f"panoptic PNG '{file_name}' does not exist; check the data set's panoptic_root")
    try:
        with Image.open(file_name) as img:
            return rgb2id(np.asarray(img.convert("RGB")))
    except OSError as exc:
        raise DataError(f"panoptic PNG '{file_name}' can't be decoded ({exc})") from exc


def read_panoptic_json(panoptic_json: str | os.PathLike, not_found_hint: str = "") -> dict:
    """The panoptic JSON as a dict (errors name the file)."""
    path = Path(panoptic_json)
    if not path.is_file():
        raise DatasetNotFoundError(f"panoptic annotation file '{path}' does not exist.{not_found_hint}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"panoptic annotation file '{path}' is not valid JSON: {exc}") from exc
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"panoptic annotation file '{path}' has no '{key}' list; it is not a COCO panoptic file")
    return data


def panoptic_categories(categories: Iterable[dict]) -> dict:
    """Metadata from panoptic categories: stuff_classes (``"things"`` first), stuff_colors and
    stuff_dataset_id_to_contiguous_id (stuff ids in id order → 1..S), plus the thing ids."""
    cats = sorted(categories, key=lambda c: c["id"])
    stuff = [c for c in cats if not c.get("isthing", 0)]
    colors = default_colors(len(stuff) + 1)
    return {
        "stuff_classes": ["things"] + [c["name"] for c in stuff],
        "stuff_colors": [[128, 128, 128]] + [list(c["color"]) if c.get("color") else colors[i + 1]
                                           for i, c in enumerate(stuff)],
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i + 1 for i, c in enumerate(stuff)},
        "panoptic_thing_ids": [c["id"] for c in cats if c.get("isthing", 0)],
    }


def semantic_labels(segment_ids: np.ndarray, segments_info: list[dict], stuff_map: dict[int, int]) -> np.ndarray:
    """uint8 [H, W] semantic map of one panoptic image: things → 0, stuff id → ``stuff_map[id]``,
    void and ids not in `segments_info` → 255."""
    lookup = {int(s["id"]): stuff_map.get(s["category_id"], THINGS_LABEL) for s in segments_info}
    uniq, inverse = np.unique(segment_ids, return_inverse=True)
    labels = np.array([lookup.get(int(u), IGNORE_LABEL) for u in uniq], dtype=np.uint8)
    return labels[inverse].reshape(segment_ids.shape)


def _write_semantic_map(job: tuple[str, list[dict], dict, str]) -> None:
    png, segments, stuff_map, out = job
    Image.fromarray(semantic_labels(read_panoptic_png(png), segments, stuff_map)).save(out, compress_level=1)


def ensure_semantic_maps(panoptic_json: str | os.PathLike, panoptic_root: str | os.PathLike,
                         sem_seg_root: str | os.PathLike, *, workers: int = 4) -> Path:
    """Derive the semantic label maps of a panoptic set into `sem_seg_root` unless done before.

    The folder counts as done when it holds ``done.json`` or, for a folder prepared elsewhere
    (Detectron2's ``prepare_panoptic_fpn.py``), one PNG per panoptic annotation. Derivation runs
    once, under a lock (`ensure_generated`), with `workers` threads (PNG codecs release the GIL).
    """
    from .shapes import ensure_generated

    sem_seg_root = Path(sem_seg_root)
    if sem_seg_root.is_dir() and not (sem_seg_root / SEM_SEG_DONE).is_file():
        data = read_panoptic_json(panoptic_json)
        if all((sem_seg_root / a["file_name"]).is_file() for a in data["annotations"]):
            return sem_seg_root

    def generate(out_dir: Path) -> None:
        data = read_panoptic_json(panoptic_json)
        stuff_map = panoptic_categories(data["categories"])["stuff_dataset_id_to_contiguous_id"]
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(os.path.join(panoptic_root, a["file_name"]), a["segments_info"], stuff_map,
                 str(out_dir / a["file_name"])) for a in data["annotations"]]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(_write_semantic_map, jobs))
        (out_dir / SEM_SEG_DONE).write_text(json.dumps({"images": len(jobs), "source": str(panoptic_json)}))

    ensure_generated(sem_seg_root, SEM_SEG_DONE, generate, f"semantic maps of {panoptic_json}")
    return sem_seg_root


def attach_panoptic(records: list[dict], panoptic_json: str | os.PathLike, panoptic_root: str | os.PathLike,
                    sem_seg_root: str | os.PathLike, thing_id_map: dict[int, int], *,
                    log: ProblemLog) -> list[dict]:
    """Add ``pan_seg_file_name``, ``sem_seg_file_name`` and ``segments_info`` to instance records.

    Records are matched by ``image_id``; one without a panoptic annotation is a problem
    ("no panoptic annotation") and is dropped (training on it would teach "all void").
    """
    data = read_panoptic_json(panoptic_json)
    stuff_map = panoptic_categories(data["categories"])["stuff_dataset_id_to_contiguous_id"]
    by_image = {a["image_id"]: a for a in data["annotations"]}
    src = str(panoptic_json)
    out = []
    for record in records:
        ann = by_image.get(record["image_id"])
        if ann is None:
            log.add("no panoptic annotation", src, f"image '{record['file_name']}' has no entry in the panoptic "
                    "annotations", image_id=record["image_id"])
            continue
        segments = []
        for s in ann["segments_info"]:
            cat = s["category_id"]
            if cat not in thing_id_map and cat not in stuff_map:
                log.add("unknown category id", src, f"segment {s['id']} has category_id {cat}, which is neither a "
                        "thing nor a stuff category", image_id=record["image_id"])
                continue
            isthing = cat in thing_id_map
            segments.append({"id": int(s["id"]), "category_id": thing_id_map[cat] if isthing else stuff_map[cat],
                             "isthing": isthing, "iscrowd": int(s.get("iscrowd", 0)), "area": s.get("area"),
                             "bbox": s.get("bbox")})
        out.append({**record, "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
                    "sem_seg_file_name": os.path.join(sem_seg_root, ann["file_name"]), "segments_info": segments})
    return out


def load_coco_panoptic(json_file, image_root, panoptic_json, panoptic_root, sem_seg_root, *,
                       dataset_name: str | None = None, on_error: str = "raise", not_found_hint: str = "",
                       derive_semantic: bool = True) -> list[dict]:
    """Records of a panoptic set (see the module docstring); `derive_semantic` first makes sure
    the semantic maps exist (`ensure_semantic_maps`)."""
    records = load_coco_json(json_file, image_root, dataset_name=dataset_name, on_error=on_error,
                             not_found_hint=not_found_hint)
    if derive_semantic:
        ensure_semantic_maps(panoptic_json, panoptic_root, sem_seg_root)
    if dataset_name:
        thing_map = MetadataCatalog.get(dataset_name).thing_dataset_id_to_contiguous_id
    else:
        things = sorted(c["id"] for c in read_panoptic_json(panoptic_json)["categories"] if c.get("isthing"))
        thing_map = {cat: i for i, cat in enumerate(things)}
    log = ProblemLog(on_error)
    records = attach_panoptic(records, panoptic_json, panoptic_root, sem_seg_root, thing_map, log=log)
    log.warn_summary(str(panoptic_json))
    return records


def register_coco_panoptic(name: str, *, json_file, image_root, panoptic_json, panoptic_root, sem_seg_root,
                           metadata: dict | None = None, on_error: str = "raise", not_found_hint: str = "",
                           overwrite: bool = False) -> None:
    """Register a panoptic set in the "separated" layout as `name` (nothing is read until used).

    Args:
        json_file, image_root: the instance annotations and the images (as `register_coco_instances`).
        panoptic_json, panoptic_root: the panoptic JSON and its PNG folder.
        sem_seg_root: where the derived semantic maps are (or will be) cached.
    """
    register_coco_instances(name, json_file, image_root, metadata=metadata, on_error=on_error,
                            not_found_hint=not_found_hint, overwrite=overwrite)
    DatasetCatalog.register(name, _PanopticLoader(name, json_file, image_root, panoptic_json, panoptic_root,
                                                  sem_seg_root, on_error, not_found_hint), overwrite=True)
    meta = MetadataCatalog.get(name)
    meta.set(panoptic_json=panoptic_json, panoptic_root=panoptic_root, sem_seg_root=sem_seg_root,
             ignore_label=IGNORE_LABEL)
    for key in ("stuff_classes", "stuff_colors", "stuff_dataset_id_to_contiguous_id"):
        meta.set_lazy(key, functools.partial(_panoptic_metadata, name, key))


def _panoptic_metadata(name: str, key: str):
    return panoptic_categories(read_panoptic_json(MetadataCatalog.get(name).panoptic_json)["categories"])[key]


class _PanopticLoader:
    """The registered function of a panoptic set (a class so that it pickles)."""

    def __init__(self, name, json_file, image_root, panoptic_json, panoptic_root, sem_seg_root, on_error,
                 not_found_hint):
        self.name, self.on_error, self.not_found_hint = name, on_error, not_found_hint
        self.paths = (json_file, image_root, panoptic_json, panoptic_root, sem_seg_root)

    def __call__(self, on_error: str | None = None) -> list[dict]:
        return load_coco_panoptic(*self.paths, dataset_name=self.name, on_error=on_error or self.on_error,
                                  not_found_hint=self.not_found_hint)


def panoptic_problems(panoptic_json: str | os.PathLike, panoptic_root: str | os.PathLike, log: ProblemLog, *,
                      image_ids: set | None = None, workers: int = 2) -> int:
    """Check every panoptic PNG against its JSON entry (for ``task=check_data``); returns the
    number of images checked. Problems: a missing/undecodable PNG, ids in the PNG that
    segments_info lacks (or the reverse), unknown categories, an ``area`` that differs from the
    PNG's pixel count, a duplicate segment id, an annotation of an image that isn't in `image_ids`."""
    data = read_panoptic_json(panoptic_json)
    cats = {c["id"] for c in data["categories"]}
    src = str(panoptic_json)

    def check(ann: dict) -> list[tuple[str, str]]:
        found = []
        try:
            ids, counts = np.unique(read_panoptic_png(os.path.join(panoptic_root, ann["file_name"])),
                                    return_counts=True)
        except DataError as exc:
            return [("missing panoptic PNG" if "does not exist" in str(exc) else "corrupt panoptic PNG", str(exc))]
        area = dict(zip(ids.tolist(), counts.tolist()))
        seen = set()
        for s in ann.get("segments_info", []):
            if s["id"] in seen:
                found.append(("duplicate segment id", f"segment id {s['id']} is listed twice"))
            seen.add(s["id"])
            if s.get("category_id") not in cats:
                found.append(("unknown category id", f"segment {s['id']} has category_id {s.get('category_id')!r}, "
                                                     f"not one of the file's categories"))
            if s["id"] not in area:
                found.append(("panoptic id mismatch", f"segment {s['id']} is in segments_info but not in the PNG"))
            elif s.get("area") is not None and int(s["area"]) != area[s["id"]]:
                found.append(("wrong panoptic area", f"segment {s['id']} has area {s['area']} in the JSON but "
                                                     f"{area[s['id']]} pixels in the PNG"))
        extra = sorted(set(area) - seen - {0})
        if extra:
            found.append(("panoptic id mismatch", f"the PNG has segment ids {extra[:5]} that segments_info lacks"))
        return found

    anns = data["annotations"]
    with ThreadPoolExecutor(workers) as pool:
        for ann, found in zip(anns, pool.map(check, anns)):
            if image_ids is not None and ann.get("image_id") not in image_ids:
                found = [("panoptic annotation of unknown image",
                          f"image_id {ann.get('image_id')!r} is not an image of the data set"), *found]
            for kind, message in found:
                log.add(kind, f"{src} ({ann.get('file_name')})", message, image_id=ann.get("image_id"))
    return len(anns)
