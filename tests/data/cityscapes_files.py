"""A tiny Cityscapes split in the gtFine layout, written the way the official tools draw it.

Two cities, five 64 x 128 images. Each image's polygons JSON lists background regions, then
things (drawn in order, later on top, as ``json2labelImg`` / ``json2instanceImg`` do with
PIL's polygon fill): cars and persons as instances, a ``cargroup`` (crowd, no instance id), a
caravan (a thing class evaluation ignores) and a license plate (label id -1, not drawn).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

H, W = 64, 128
CITIES = {"aachen": 3, "bremen": 2}
# (label, label id, has instances): the ids of the public label table, written here independently.
IDS = {"road": 7, "sky": 23, "building": 11, "person": 24, "car": 26, "bus": 28, "caravan": 29,
       "cargroup": 26, "license plate": -1}
INSTANCE_LABELS = {"person", "car", "bus", "caravan"}


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def image_objects(rng: np.random.Generator) -> list[dict]:
    """Background, then 3-5 things at random places (sizes >= 100 px so the AP counts them)."""
    objects = [{"label": "sky", "polygon": _rect(0, 0, W - 1, 20)},
               {"label": "road", "polygon": _rect(0, 40, W - 1, H - 1)},
               {"label": "building", "polygon": [[10, 5], [60, 5], [60, 39], [10, 39]]}]
    kinds = ["car", "person", "car", "cargroup", "caravan", "bus"][: rng.integers(3, 6)]
    for kind in kinds:
        w, h = int(rng.integers(12, 30)), int(rng.integers(10, 22))
        x0, y0 = int(rng.integers(0, W - w)), int(rng.integers(10, H - h))
        shape = _rect(x0, y0, x0 + w, y0 + h) if rng.random() < 0.6 else [[x0, y0 + h], [x0 + w // 2, y0], [x0 + w, y0 + h]]
        objects.append({"label": kind, "polygon": shape})
    objects.append({"label": "license plate", "polygon": _rect(0, 50, 5, 55)})
    return objects


def write_cityscapes(root: Path, split: str = "val", seed: int = 0) -> dict[str, list[dict]]:
    """Write ``leftImg8bit/<split>`` and ``gtFine/<split>`` under `root`; returns {image core name: objects}."""
    rng = np.random.default_rng(seed)
    written = {}
    for city, count in CITIES.items():
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            core = f"{city}_{k:06d}_{19 * k:06d}"
            objects = image_objects(rng)
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
                root / "leftImg8bit" / split / city / f"{core}_leftImg8bit.png")
            gt = root / "gtFine" / split / city / f"{core}_gtFine"
            Path(f"{gt}_polygons.json").write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": objects}))
            labels, instances = Image.new("L", (W, H), 0), Image.new("I", (W, H), 0)
            count_per_label: dict[str, int] = {}
            for obj in objects:
                label_id = IDS[obj["label"]]
                if label_id < 0:
                    continue
                points = [tuple(p) for p in obj["polygon"]]
                ImageDraw.Draw(labels).polygon(points, fill=label_id)
                instance_id = label_id
                if obj["label"] in INSTANCE_LABELS:
                    instance_id = label_id * 1000 + count_per_label.setdefault(obj["label"], 0)
                    count_per_label[obj["label"]] += 1
                ImageDraw.Draw(instances).polygon(points, fill=instance_id)
            labels.save(f"{gt}_labelIds.png")
            Image.fromarray(np.asarray(instances).astype(np.uint16)).save(f"{gt}_instanceIds.png")
            written[core] = objects
    return written
