"""Cityscapes fine annotations (the ``gtFine`` download layout) as instance or semantic records.

Layout (``split``: train / val / test)::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{polygons.json,labelIds.png,instanceIds.png}
                                                     [_gtFine_labelTrainIds.png: derived, see below]

Instance records (`load_cityscapes_instances`) come from the polygons JSON: objects of the 8
evaluated classes with instances (`THING_LABELS`), ``category_id`` their index there; a
``<class>group`` label (``cargroup``: several cars in one polygon) is a crowd region
(``iscrowd=1``). Coordinates: JSON vertices are pixel indices, so polygons get +0.5 (pixel
centres) and the box spans the pixels, (min, min) to (max + 1, max + 1), clipped to the image.
Unlike Detectron2 (which subtracts later, occluding objects with shapely), polygons are kept
as annotated, occluded parts included; the evaluation reads ``instanceIds.png`` either way.

Semantic records (`load_cityscapes_semantic`) have ``sem_seg_file_name`` = the train-id map
``*_gtFine_labelTrainIds.png`` (19 classes, 255 ignored): the file the official
``createTrainIdLabelImgs`` writes, derived here from ``labelIds.png`` through `LABELS` when
missing. Both kinds carry ``label_ids_file`` and ``instance_ids_file`` for the evaluators.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from detrun.errors import writing
from detrun.structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ..image_io import read_label_map
from ..problems import DatasetNotFoundError, ProblemLog
from .cityscapes_labels import IGNORE_LABEL, NAME_TO_LABEL, STUFF_LABELS, THING_LABELS, label_id_to_train_id_table

TASKS = ("instance_seg", "sem_seg")
THING_INDEX = {label.name: i for i, label in enumerate(THING_LABELS)}
_IMAGE_SUFFIX = "_leftImg8bit.png"


def cityscapes_files(image_dir: str | os.PathLike, gt_dir: str | os.PathLike, *,
                     not_found_hint: str = "") -> list[tuple[str, str]]:
    """(image file, ground-truth prefix ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine``) of every
    ``<image_dir>/<city>/*_leftImg8bit.png``, sorted; DatasetNotFoundError naming the layout if none."""
    image_dir, gt_dir = Path(image_dir), Path(gt_dir)
    layout = ("the Cityscapes layout is leftImg8bit/<split>/<city>/*_leftImg8bit.png next to "
              "gtFine/<split>/<city>/*_gtFine_polygons.json, *_gtFine_labelIds.png, *_gtFine_instanceIds.png")
    for what, folder in (("image", image_dir), ("ground-truth", gt_dir)):
        if not folder.is_dir():
            raise DatasetNotFoundError(f"Cityscapes {what} folder '{folder}' does not exist ({layout}).{not_found_hint}")
    images = sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}"))
    if not images:
        raise DatasetNotFoundError(f"no images '{image_dir}/<city>/*{_IMAGE_SUFFIX}' ({layout}).{not_found_hint}")
    return [(str(img), str(gt_dir / img.parent.name / (img.name[:-len(_IMAGE_SUFFIX)] + "_gtFine")))
            for img in images]


def _gt_files(gt_prefix: str) -> dict[str, str]:
    return {"label_ids_file": gt_prefix + "_labelIds.png", "instance_ids_file": gt_prefix + "_instanceIds.png"}


def _polygon_problem(polygon) -> str | None:
    if not isinstance(polygon, list) or len(polygon) < 3:
        return f"polygon must be a list of >= 3 [x, y] points, got {str(polygon)[:60]}"
    for point in polygon:
        if (not isinstance(point, (list, tuple)) or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
            return f"polygon point {str(point)[:40]} is not [x, y] numbers"
    return None


def polygons_to_annotations(data: dict, json_file: str, log: ProblemLog, *, height: int, width: int) -> list[dict]:
    """Annotations of one polygons JSON's ``objects`` (see the module docstring); each bad object
    is a problem naming `json_file` and the object's index (dropped in "skip" mode)."""
    annotations = []
    for index, obj in enumerate(data["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            log.add("bad object", json_file, f"object {index} has no 'label' string: {str(obj)[:60]}")
            continue
        if obj.get("deleted"):
            continue
        name = obj["label"]
        crowd = name not in NAME_TO_LABEL and name.endswith("group")
        label = NAME_TO_LABEL.get(name[:-len("group")] if crowd else name)
        if label is None:
            log.add("unknown label", json_file, f"object {index} has label {name!r}, which is not a Cityscapes label")
            continue
        problem = _polygon_problem(obj.get("polygon"))
        if problem is not None:
            log.add("bad polygon", json_file, f"object {index} ({name!r}): {problem}")
            continue
        if label.name not in THING_INDEX:
            continue
        xs = [float(p[0]) for p in obj["polygon"]]
        ys = [float(p[1]) for p in obj["polygon"]]
        box = [max(min(xs), 0.0), max(min(ys), 0.0), min(max(xs) + 1, width), min(max(ys) + 1, height)]
        annotations.append({
            "bbox": box, "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": THING_INDEX[label.name], "iscrowd": int(crowd),
            "segmentation": [[v + 0.5 for point in obj["polygon"] for v in point]],
        })
    return annotations


def _read_polygons_json(json_file: str, log: ProblemLog) -> dict | None:
    if not os.path.isfile(json_file):
        log.add("missing annotation file", json_file, "the image's polygons JSON does not exist")
        return None
    try:
        data = json.loads(Path(json_file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.add("bad annotation file", json_file, f"not valid JSON: {exc}")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        log.add("bad annotation file", json_file, "has no 'objects' list; not a Cityscapes polygons file")
        return None
    h, w = data.get("imgHeight"), data.get("imgWidth")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        log.add("bad image entry", json_file, f"imgHeight/imgWidth must be positive integers, got {h!r}, {w!r}")
        return None
    return data


def load_cityscapes_instances(image_dir, gt_dir, *, on_error: str = "raise", log: ProblemLog | None = None,
                              not_found_hint: str = "") -> list[dict]:
    """Instance records of one split from its polygons JSONs (see the module docstring).

    Returns ``[{"file_name", "image_id" (index in file order), "height", "width",
    "annotations": [{"bbox" XYXY pixels, "bbox_mode", "category_id" 0..7, "iscrowd",
    "segmentation": [flat polygon]}], "label_ids_file", "instance_ids_file"}]``. Problems go to
    `log` if given (``task=check_data``), else raise or are skipped as `on_error` says.
    """
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    records = []
    for image_id, (image, gt_prefix) in enumerate(cityscapes_files(image_dir, gt_dir, not_found_hint=not_found_hint)):
        json_file = gt_prefix + "_polygons.json"
        data = _read_polygons_json(json_file, log)
        if data is None:
            continue
        height, width = data["imgHeight"], data["imgWidth"]
        records.append({"file_name": image, "image_id": image_id, "height": height, "width": width,
                        "annotations": polygons_to_annotations(data, json_file, log, height=height, width=width),
                        **_gt_files(gt_prefix)})
    if own_log:
        log.warn_summary(str(gt_dir))
    return records


def _write_train_ids(job: tuple[str, str]) -> None:
    label_ids, out = job
    train_ids = label_id_to_train_id_table()[read_label_map(label_ids).clip(0, 255)]
    tmp = f"{out}.{os.getpid()}.tmp"  # another process may derive the same file: rename is atomic
    with writing(out):
        Image.fromarray(train_ids).save(tmp, format="PNG")
        os.replace(tmp, out)


def ensure_train_id_maps(records: list[dict], *, workers: int = 4) -> int:
    """Write each record's missing ``sem_seg_file_name`` (train ids) from its ``label_ids_file``;
    returns how many were written (PNG codecs release the GIL, hence threads)."""
    jobs = [(r["label_ids_file"], r["sem_seg_file_name"]) for r in records if not os.path.isfile(r["sem_seg_file_name"])]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_write_train_ids, jobs))
    return len(jobs)


def load_cityscapes_semantic(image_dir, gt_dir, *, on_error: str = "raise", log: ProblemLog | None = None,
                             not_found_hint: str = "", derive_train_ids: bool = True) -> list[dict]:
    """Semantic records of one split: ``[{"file_name", "image_id", "height", "width",
    "sem_seg_file_name" (train ids 0..18, 255 ignored), "label_ids_file", "instance_ids_file"}]``.

    An image without a readable ``labelIds.png`` is a problem (see `load_cityscapes_instances`);
    `derive_train_ids` writes the missing train-id maps first (`ensure_train_id_maps`).
    """
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    records = []
    for image_id, (image, gt_prefix) in enumerate(cityscapes_files(image_dir, gt_dir, not_found_hint=not_found_hint)):
        gt = _gt_files(gt_prefix)
        try:
            with Image.open(gt["label_ids_file"]) as img:  # reads the header only
                width, height = img.size
        except FileNotFoundError:
            log.add("missing annotation file", gt["label_ids_file"], "the image's label-id PNG does not exist")
            continue
        except OSError as exc:
            log.add("corrupt label map", gt["label_ids_file"], f"can't be decoded ({exc})")
            continue
        records.append({"file_name": image, "image_id": image_id, "height": height, "width": width,
                        "sem_seg_file_name": gt_prefix + "_labelTrainIds.png", **gt})
    if derive_train_ids:
        ensure_train_id_maps(records)
    if own_log:
        log.warn_summary(str(gt_dir))
    return records


class _CityscapesLoader:
    """The registered function of a Cityscapes set (a class so that it pickles)."""

    def __init__(self, task, image_dir, gt_dir, on_error, not_found_hint):
        self.load = load_cityscapes_instances if task == "instance_seg" else load_cityscapes_semantic
        self.image_dir, self.gt_dir, self.on_error, self.not_found_hint = image_dir, gt_dir, on_error, not_found_hint

    def __call__(self, on_error: str | None = None, log: ProblemLog | None = None) -> list[dict]:
        return self.load(self.image_dir, self.gt_dir, on_error=on_error or self.on_error, log=log,
                         not_found_hint=self.not_found_hint)


def register_cityscapes(name: str, *, task: str, image_dir, gt_dir, on_error: str = "raise",
                        not_found_hint: str = "", overwrite: bool = False) -> None:
    """Register one split of Cityscapes as `name` (nothing is read until used).

    Args:
        task: "instance_seg" (metadata ``thing_classes``: the 8 classes with instances) or
            "sem_seg" (``stuff_classes``: the 19 evaluated classes, ``ignore_label`` 255).
        image_dir, gt_dir: ``leftImg8bit/<split>`` and ``gtFine/<split>`` (paths or `DatasetPath`).
    """
    if task not in TASKS:
        raise ValueError(f"register_cityscapes: task must be one of {TASKS}, got {task!r}")
    DatasetCatalog.register(name, _CityscapesLoader(task, image_dir, gt_dir, on_error, not_found_hint),
                            overwrite=overwrite)
    meta = MetadataCatalog.get(name)
    if overwrite:
        meta.clear()
    meta.set(image_dir=image_dir, gt_dir=gt_dir, ignore_label=IGNORE_LABEL)
    if task == "instance_seg":
        meta.set(thing_classes=[label.name for label in THING_LABELS],
                 thing_colors=[list(label.color) for label in THING_LABELS],
                 thing_dataset_id_to_contiguous_id={label.id: i for i, label in enumerate(THING_LABELS)})
    else:
        meta.set(stuff_classes=[label.name for label in STUFF_LABELS],
                 stuff_colors=[list(label.color) for label in STUFF_LABELS])
