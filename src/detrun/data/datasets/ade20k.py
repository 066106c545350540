"""ADE20K SceneParsing (150 classes) in the ``ADEChallengeData2016`` download layout.

``images/{training,validation}/<name>.jpg`` and ``annotations/{training,validation}/<name>.png``,
whose pixels are 0 ("other", not scored) or a class 1..150. Records' label maps must hold the
training labels (class k → k - 1, 0 → 255 = ignored, as Detectron2's ``prepare_ade20k_sem_seg.py``
writes them), so each split's PNGs are converted once into ``annotations_detrun/<split>/``
(under a lock, `ensure_generated`). The conversion checks every PNG; what is wrong with one
(undecodable, not one channel, labels above 150) is remembered in the folder's ``done.json``
and reported on every load by the PNG's name, that image left out (delete the folder to
convert again after fixing a file).

Records: ``file_name``, ``image_id`` (the file name without extension), ``height``, ``width``
(the label map's), ``sem_seg_file_name`` and no instance annotations. Metadata: the 150 names as
``stuff_classes``, ``ignore_label`` 255, ``evaluator_type`` "sem_seg"; score with `SemSegEvaluator`.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import DatasetCatalog, MetadataCatalog
from ..image_io import read_label_map
from ..problems import DataError, DatasetNotFoundError, ProblemLog
from .coco import default_colors

# The 150 SceneParsing classes (objectInfo150's first names), label k + 1 in the PNGs → class k.
CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
SPLITS = {"train": "training", "val": "validation"}  # detrun's split → the download's folder name
IGNORE_LABEL = 255
CONVERTED = "annotations_detrun"
DONE = "done.json"


def training_labels(raw: np.ndarray) -> np.ndarray:
    """uint8 [H, W] training labels of a SceneParsing label map (int [H, W], values 0..150):
    k → k - 1, 0 ("other") → 255."""
    return (np.asarray(raw, dtype=np.int64) - 1).astype(np.uint8)  # 0 - 1 wraps to 255


def _convert(job: tuple[Path, Path]) -> tuple[str, list[int] | tuple[str, str]]:
    """Convert one PNG; returns (name, [height, width]) or (name, (problem kind, message))."""
    src, dst = job
    try:
        raw = read_label_map(str(src))
    except DataError as exc:
        return src.stem, ("bad label map", str(exc))
    if raw.min() < 0 or raw.max() > len(CLASS_NAMES):
        bad = sorted(set(np.unique(raw[(raw < 0) | (raw > len(CLASS_NAMES))]).tolist()))
        return src.stem, ("label out of range", f"has labels {bad[:5]}; SceneParsing labels are 0 (other) and "
                                                f"1..{len(CLASS_NAMES)}")
    Image.fromarray(training_labels(raw)).save(dst, compress_level=1)
    return src.stem, list(raw.shape)


def ensure_converted(annotation_dir: Path, out_dir: Path, *, workers: int = 4) -> dict:
    """Convert the split's PNGs into `out_dir` unless done before; returns its ``done.json``:
    ``{"sizes": {name: [height, width]}, "problems": {name: [kind, message]}}``."""
    from .shapes import ensure_generated

    def generate(tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        jobs = [(src, tmp / src.name) for src in sorted(annotation_dir.glob("*.png"))]
        with ThreadPoolExecutor(workers) as pool:  # PNG codecs release the GIL
            results = list(pool.map(_convert, jobs))
        done = {"sizes": {k: v for k, v in results if isinstance(v, list)},
                "problems": {k: v for k, v in results if isinstance(v, tuple)}}
        (tmp / DONE).write_text(json.dumps(done))

    marker = ensure_generated(out_dir, DONE, generate, f"ADE20K training labels of {annotation_dir}")
    return json.loads(marker.read_text())


def load_ade20k_sem_seg(root: str | os.PathLike, split: str, *, on_error: str = "raise", log: ProblemLog | None = None,
                        not_found_hint: str = "") -> list[dict]:
    """Records of split "train" or "val" of the ``ADEChallengeData2016`` folder `root` (module docstring).

    Problems (an image without its PNG or the reverse, a PNG the conversion refused) raise
    DataError naming the file (``on_error="raise"``), or drop the image with one warning
    ("skip"), or go to `log` when given (``task=check_data``).
    """
    if split not in SPLITS:
        raise ValueError(f"ADE20K split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(root)
    image_dir, annotation_dir = root / "images" / SPLITS[split], root / "annotations" / SPLITS[split]
    for folder in (image_dir, annotation_dir):
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"ADE20K folder '{folder}' does not exist (expected the ADEChallengeData2016 layout: "
                f"{root}/images/{SPLITS[split]}/*.jpg and {root}/annotations/{SPLITS[split]}/*.png).{not_found_hint}")
    own_log = log is None
    log = ProblemLog(on_error) if own_log else log
    out_dir = root / CONVERTED / SPLITS[split]
    done = ensure_converted(annotation_dir, out_dir)
    images = {p.stem: p for p in sorted(image_dir.glob("*.jpg"))}
    labels = {p.stem for p in annotation_dir.glob("*.png")}
    records = []
    for name, image in images.items():
        png = annotation_dir / f"{name}.png"
        if name not in labels:
            log.add("missing label map", str(image), f"no {png.name} in {annotation_dir}", image_id=name)
        elif name in done["problems"]:
            kind, message = done["problems"][name]
            log.add(kind, str(png), f"{message} (delete {out_dir} to convert again once fixed)", image_id=name)
        elif name not in done["sizes"]:
            log.add("label map not converted", str(png), f"it is newer than the conversion in {out_dir}; delete "
                    "that folder to convert again", image_id=name)
        else:
            height, width = done["sizes"][name]
            records.append({"file_name": str(image), "image_id": name, "height": height, "width": width,
                            "sem_seg_file_name": str(out_dir / png.name), "annotations": []})
    for name in sorted(labels - set(images)):
        log.add("label map without image", str(annotation_dir / f"{name}.png"), f"no {name}.jpg in {image_dir}",
                image_id=name)
    if own_log:
        log.warn_summary(str(root))
    return records


def register_ade20k_sem_seg(name: str, root: str | os.PathLike, split: str, *, on_error: str = "raise",
                            not_found_hint: str = "", overwrite: bool = False) -> None:
    """Register split `split` ("train" / "val") of the ``ADEChallengeData2016`` folder `root` as `name`."""
    DatasetCatalog.register(name, _Ade20kLoader(root, split, on_error, not_found_hint), overwrite=overwrite)
    meta = MetadataCatalog.get(name)
    if overwrite:
        meta.clear()
    meta.set(stuff_classes=list(CLASS_NAMES), stuff_colors=default_colors(len(CLASS_NAMES)), ignore_label=IGNORE_LABEL,
             image_root=root, evaluator_type="sem_seg")


class _Ade20kLoader:
    """The registered function of an ADE20K split (a class, not a closure, so it pickles)."""

    def __init__(self, root, split, on_error, not_found_hint):
        self.root, self.split, self.on_error, self.not_found_hint = root, split, on_error, not_found_hint

    def __call__(self, on_error: str | None = None, log: ProblemLog | None = None) -> list[dict]:
        return load_ade20k_sem_seg(self.root, self.split, on_error=on_error or self.on_error, log=log,
                                   not_found_hint=self.not_found_hint)
