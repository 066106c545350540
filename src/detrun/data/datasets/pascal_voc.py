"""Pascal VOC detection in the devkit layout: XML annotations → records, and registration by name.

A VOC folder (``VOC2007/``, ``VOC2012/``) holds ``ImageSets/Main/{split}.txt`` (one image id a
line), ``Annotations/{id}.xml`` and ``JPEGImages/{id}.jpg``. Boxes in the XML are 1-based
inclusive pixel indices: ``xmin=1, xmax=W`` covers the whole image, which is ``[0, W]`` in
continuous coordinates, so records hold ``(xmin - 1, ymin - 1, xmax, ymax)`` in XYXY_ABS (as
Detectron2 reads them). Each annotation keeps VOC's ``difficult`` and ``truncated`` flags (0/1):
difficult objects are trained on (as Detectron2 does) and ignored by the evaluator.
Image ids are the file ids (strings such as ``"000005"``).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from detrun.structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DatasetNotFoundError, ProblemLog
from ..validation import annotation_problem
from .coco import default_colors

# The 20 classes in the devkit's order (contiguous ids 0..19).
CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
SPLITS = ("train", "val", "trainval", "test")


class _BadObject(Exception):
    """One unusable ``<object>`` of an annotation file (the message says what is wrong)."""


def _text(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise _BadObject(f"has no <{tag}>")
    return child.text.strip()


def _number(element: ET.Element, tag: str) -> float:
    text = _text(element, tag)
    try:
        return float(text)
    except ValueError:
        raise _BadObject(f"has <{tag}>{text}</{tag}>, not a number") from None


def _flag(obj: ET.Element, tag: str) -> int:
    """A 0/1 flag of an object; absent means 0 (VOC2012 test-style files omit them)."""
    child = obj.find(tag)
    if child is None or child.text is None:
        return 0
    try:
        return int(float(child.text))
    except ValueError:
        raise _BadObject(f"has <{tag}>{child.text}</{tag}>, not 0 or 1") from None


def _parse_object(obj: ET.Element, class_index: dict[str, int]) -> dict:
    name = _text(obj, "name")
    if name not in class_index:
        raise _BadObject(f"has class '{name}', which is not one of the data set's classes {list(class_index)}")
    box = obj.find("bndbox")
    if box is None:
        raise _BadObject("has no <bndbox>")
    x0, y0, x1, y1 = (_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
    return {"bbox": [x0 - 1.0, y0 - 1.0, x1, y1], "bbox_mode": BoxMode.XYXY_ABS, "category_id": class_index[name],
            "iscrowd": 0, "difficult": _flag(obj, "difficult"), "truncated": _flag(obj, "truncated")}


def parse_voc_xml(xml_file: str | os.PathLike, image_id: str, image_file: str, class_index: dict[str, int],
                  log: ProblemLog) -> dict | None:
    """One record from one annotation file; problems go to `log` (a bad ``<object>``, named by its
    index in the file, is dropped; an unreadable file or one without a usable ``<size>`` drops the
    image). Returns None when the image is dropped."""
    src = str(xml_file)
    try:
        root = ET.parse(xml_file).getroot()
    except FileNotFoundError:
        log.add("missing annotation file", src, "the image set lists this id but Annotations/ has no such file",
                image_id=image_id)
        return None
    except (ET.ParseError, OSError) as exc:
        log.add("malformed XML", src, f"can't be parsed ({exc})", image_id=image_id)
        return None
    try:
        size = root.find("size")
        if size is None:
            raise _BadObject("has no <size>")
        width, height = int(_number(size, "width")), int(_number(size, "height"))
    except _BadObject as exc:
        log.add("bad image entry", src, f"the annotation {exc}", image_id=image_id)
        return None
    if width <= 0 or height <= 0:
        log.add("bad image entry", src, f"<size> is {width}x{height}; both must be > 0", image_id=image_id)
        return None
    annotations = []
    for index, obj in enumerate(root.findall("object")):
        try:
            ann = _parse_object(obj, class_index)
        except _BadObject as exc:
            log.add("bad object", src, f"object {index} {exc}", image_id=image_id, annotation_id=index)
            continue
        problem = annotation_problem(ann, height=height, width=width, num_classes=len(class_index), num_keypoints=None)
        if problem is not None:
            log.add(problem[0], src, f"object {index}: {problem[1]}", image_id=image_id, annotation_id=index)
            continue
        annotations.append(ann)
    return {"file_name": image_file, "image_id": image_id, "height": height, "width": width,
            "annotations": annotations}


def load_voc_instances(dirname: str | os.PathLike, split: str, *, class_names=CLASS_NAMES, on_error: str = "raise",
                       log: ProblemLog | None = None, not_found_hint: str = "") -> list[dict]:
    """Records of one image set of a VOC devkit folder (see the module docstring).

    Args:
        dirname: the folder holding ``Annotations/``, ``ImageSets/Main/`` and ``JPEGImages/``.
        split: the image set, e.g. "trainval" (``ImageSets/Main/{split}.txt``).
        class_names: the classes, in contiguous-id order.
        on_error: "raise" at the first problem (DataError naming the XML file and object index)
            or "skip" it with one warning; ignored when `log` is given (``task=check_data``).
    Returns:
        list[dict] in the image set's order; boxes XYXY_ABS with ``difficult`` and ``truncated``.
    """
    dirname = Path(dirname)
    id_file = dirname / "ImageSets" / "Main" / f"{split}.txt"
    if not id_file.is_file():
        raise DatasetNotFoundError(
            f"Pascal VOC image set '{id_file}' does not exist (expected the devkit layout {dirname}/ImageSets/Main/"
            f"{split}.txt, {dirname}/Annotations/*.xml, {dirname}/JPEGImages/*.jpg).{not_found_hint}")
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    class_index = {name: i for i, name in enumerate(class_names)}
    records = []
    for image_id in id_file.read_text().split():
        record = parse_voc_xml(dirname / "Annotations" / f"{image_id}.xml", image_id,
                               str(dirname / "JPEGImages" / f"{image_id}.jpg"), class_index, log)
        if record is not None:
            records.append(record)
    if own_log:
        log.warn_summary(str(id_file))
    return records


def register_pascal_voc(name: str, dirname: str | os.PathLike, split: str, year: int, *,
                        class_names=CLASS_NAMES, on_error: str = "raise", not_found_hint: str = "",
                        overwrite: bool = False) -> None:
    """Register image set `split` of the VOC folder `dirname` as `name` (nothing is read until used).

    Metadata: thing_classes, thing_colors, dirname, split, year (the evaluator's AP metric
    follows it: 11-point for 2007) and evaluator_type "pascal_voc".
    """
    DatasetCatalog.register(name, _VocLoader(dirname, split, tuple(class_names), on_error, not_found_hint),
                            overwrite=overwrite)
    meta = MetadataCatalog.get(name)
    if overwrite:
        meta.clear()
    meta.set(thing_classes=list(class_names), thing_colors=default_colors(len(class_names)), dirname=dirname,
             split=split, year=int(year), evaluator_type="pascal_voc")


class _VocLoader:
    """The registered function of a VOC image set (a class, not a closure, so it pickles)."""

    def __init__(self, dirname, split, class_names, on_error, not_found_hint):
        self.dirname, self.split, self.class_names = dirname, split, class_names
        self.on_error, self.not_found_hint = on_error, not_found_hint

    def __call__(self, on_error: str | None = None, log: ProblemLog | None = None) -> list[dict]:
        return load_voc_instances(self.dirname, self.split, class_names=self.class_names,
                                  on_error=on_error or self.on_error, log=log, not_found_hint=self.not_found_hint)
