"""The built-in synthetic "shapes" data set: generated once from a seed, cached as PNG + COCO JSON.

Images show 2-6 circles, squares and triangles (3 classes) of random size, colour and position on a
textured background, some partly occluding others. Each annotation has the visible part's exact
mask (as pixel-edge polygons that pycocotools decodes back to the very pixels drawn), its box, and
keypoints (square/triangle corners, circle centre; v=1 when hidden by a shape in front).

Cache: ``$DETRUN_DATASETS/shapes/<hash of the parameters>/`` (default ``./datasets``) holding
``images/*.png``, ``annotations.json`` and ``params.json``; regenerated only if missing or if any
parameter (or GENERATOR_VERSION) changes. Recipes use `shapes_dataset`; the built-in names
``shapes_train`` / ``shapes_val`` use the defaults below.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DataError
from .paths import datasets_root
from .coco import load_coco_json
from .mask_tracing import mask_to_polygons
from .shapes_render import CLASSES, KEYPOINT_FLIP_MAP, KEYPOINT_NAMES, render_image

logger = logging.getLogger(__name__)

# Bump when the drawing code changes what a (seed, parameters) pair produces, to invalidate caches.
GENERATOR_VERSION = 2
# COCO OKS sigma per keypoint (for keypoint AP): corners and centres are sharp points, like COCO's eyes.
KEYPOINT_OKS_SIGMAS = [0.025] * len(KEYPOINT_NAMES)
# Skeleton drawn in pictures (name, name, RGB colour): the outlines of squares and triangles.
KEYPOINT_CONNECTION_RULES = [[a, b, [255, 220, 0]] for a, b in (
    ("top_left", "top_right"), ("top_right", "bottom_right"), ("bottom_right", "bottom_left"),
    ("bottom_left", "top_left"), ("top", "bottom_left"), ("top", "bottom_right"))]
DEFAULTS = dict(image_size=192, min_objects=2, max_objects=6, min_size=16, max_size=64,
                occlusion_prob=0.3, max_occluded_fraction=0.4)
SPLITS = {"shapes_train": dict(num_images=3000, seed=0), "shapes_val": dict(num_images=250, seed=1)}


def _params(num_images: int, seed: int, image_size: int, min_objects: int, max_objects: int, min_size: float,
            max_size: float, occlusion_prob: float, max_occluded_fraction: float) -> dict:
    if not (1 <= min_objects <= max_objects):
        raise ValueError(f"shapes: need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    if not (4 <= min_size <= max_size < image_size):
        raise ValueError(f"shapes: need 4 <= min_size <= max_size < image_size, got {min_size}, {max_size}, {image_size}")
    if num_images < 1:
        raise ValueError(f"shapes: num_images must be >= 1, got {num_images}")
    return dict(num_images=int(num_images), seed=int(seed), image_size=int(image_size), min_objects=int(min_objects),
                max_objects=int(max_objects), min_size=float(min_size), max_size=float(max_size),
                occlusion_prob=float(occlusion_prob), max_occluded_fraction=float(max_occluded_fraction),
                version=GENERATOR_VERSION)


def shapes_cache_dir(params: dict, root: str | os.PathLike | None = None) -> Path:
    """Folder of the generated set for `params` (see `_params`): ``<root>/shapes/<hash>``."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root if root is not None else datasets_root()) / "shapes" / digest


def _render_chunk(args: tuple[dict, list[int], str]) -> tuple[list[dict], list[dict]]:
    """Render and save images `indices`; return their COCO image and annotation entries."""
    params, indices, image_dir = args
    render_kw = {k: params[k] for k in DEFAULTS}
    images, annotations = [], []
    for index in indices:
        for attempt in range(100):
            # One generator per (seed, image, attempt): any image can be redrawn alone, on any worker.
            img, objects = render_image(np.random.default_rng([params["seed"], index, attempt]), **render_kw)
            traced = [mask_to_polygons(o.mask) for o in objects]
            if not any(holes for _, holes in traced):  # COCO polygons can't express holes: redraw
                break
        file_name = f"{index:06d}.png"
        Image.fromarray(img).save(os.path.join(image_dir, file_name), compress_level=1)
        size = params["image_size"]
        images.append({"id": index + 1, "file_name": file_name, "height": size, "width": size})
        for obj, (polygons, _) in zip(objects, traced):
            ys, xs = np.nonzero(obj.mask)
            x0, y0 = int(xs.min()), int(ys.min())
            kp = obj.keypoints.copy()
            # COCO stores keypoints as pixel indices (continuous - 0.5); unlabelled ones as 0, 0, 0.
            kp[:, :2] -= 0.5
            kp[kp[:, 2] == 0] = 0
            annotations.append({
                "image_id": index + 1,
                "category_id": obj.cls + 1,
                "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                "area": int(obj.mask.sum()),
                "iscrowd": 0,
                "segmentation": polygons,
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            })
    return images, annotations


def generate_shapes(params: dict, out_dir: str | os.PathLike, *, workers: int | None = None) -> Path:
    """Render the data set described by `params` into `out_dir` (images/ + annotations.json).

    Runs `workers` processes (default: all cores; one for small sets). Returns the annotation file path.
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    n = params["num_images"]
    if workers is None:  # below ~64 images, starting processes costs more than it saves
        workers = (os.cpu_count() or 1) if n >= 64 else 1
    workers = max(1, min(workers, n))
    chunks = [list(range(i, n, workers * 4)) for i in range(min(n, workers * 4))]
    jobs = [(params, chunk, str(image_dir)) for chunk in chunks]
    if workers == 1:
        results = [_render_chunk(job) for job in jobs]
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            results = pool.map(_render_chunk, jobs)
    images = sorted((im for r in results for im in r[0]), key=lambda im: im["id"])
    annotations = sorted((a for r in results for a in r[1]), key=lambda a: a["image_id"])
    for i, ann in enumerate(annotations):
        ann["id"] = i + 1
    categories = [{"id": i + 1, "name": name, "supercategory": "shape", "keypoints": list(KEYPOINT_NAMES),
                   "skeleton": []} for i, name in enumerate(CLASSES)]
    coco = {"info": {"description": "detrun synthetic shapes", "params": params},
            "images": images, "annotations": annotations, "categories": categories}
    json_file = out_dir / "annotations.json"
    json_file.write_text(json.dumps(coco, separators=(",", ":")))
    (out_dir / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True))
    return json_file


def ensure_shapes(params: dict, root: str | os.PathLike | None = None) -> Path:
    """Return the annotation file of the cached set for `params`, generating it first if needed.

    Safe with several processes (DDP ranks): one generates under a file lock, the others wait.
    """
    out_dir = shapes_cache_dir(params, root)
    return ensure_generated(out_dir, "annotations.json", functools.partial(generate_shapes, params),
                            f"{params['num_images']} shapes images")


def ensure_generated(out_dir: Path, marker: str, generate: Callable[[Path], object], what: str) -> Path:
    """``out_dir / marker``, after running ``generate(tmp_dir)`` once if it is missing.

    `generate` writes a whole generated set into the folder it is given; that folder is renamed
    to `out_dir` when done, so the set appears complete or not at all. Several processes (DDP
    ranks) may call this at once: one generates under a file lock, the others wait.
    """
    marker_file = out_dir / marker
    if marker_file.is_file():
        return marker_file
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker_file.is_file():  # another process may have finished it while we waited
            start = time.perf_counter()
            tmp = out_dir.parent / f".{out_dir.name}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            generate(tmp)
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)  # appears complete or not at all
            logger.info("generated %s in %s (%.1f s)", what, out_dir, time.perf_counter() - start)
    return marker_file


def register_shapes(name: str, *, num_images: int, seed: int, image_size: int = DEFAULTS["image_size"],
                    min_objects: int = DEFAULTS["min_objects"], max_objects: int = DEFAULTS["max_objects"],
                    min_size: float = DEFAULTS["min_size"], max_size: float = DEFAULTS["max_size"],
                    occlusion_prob: float = DEFAULTS["occlusion_prob"],
                    max_occluded_fraction: float = DEFAULTS["max_occluded_fraction"],
                    root: str | None = None, on_error: str = "raise") -> None:
    """(Re-)register `name` as a shapes set with these parameters (sizes in pixels).

    Nothing is generated until the records or the metadata's json_file are first used.
    """
    params = _params(num_images, seed, image_size, min_objects, max_objects, min_size, max_size,
                     occlusion_prob, max_occluded_fraction)
    DatasetCatalog.register(name, _ShapesLoader(name, params, root, on_error), overwrite=True)
    meta = MetadataCatalog.get(name)
    meta.clear()  # in place: an evaluator built earlier for `name` sees these parameters too
    meta.set(
        thing_classes=list(CLASSES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(CLASSES))},
        thing_colors=[[220, 60, 60], [60, 180, 75], [70, 110, 230]],
        keypoint_names=list(KEYPOINT_NAMES),
        keypoint_flip_map=[list(pair) for pair in KEYPOINT_FLIP_MAP],
        keypoint_connection_rules=KEYPOINT_CONNECTION_RULES,
        keypoint_oks_sigmas=KEYPOINT_OKS_SIGMAS,
        evaluator_type="coco",
        shapes_params=params,
    )
    # Partials, not lambdas: metadata is pickled into spawned processes (`detrun.data.registrations`).
    meta.set_lazy("json_file", functools.partial(_shapes_path, params, root, "annotations.json"))
    meta.set_lazy("image_root", functools.partial(_shapes_path, params, root, "images"))


def _shapes_path(params: dict, root: str | None, name: str) -> str:
    """Path of `name` in the generated set's folder (generating it first if needed)."""
    return str(ensure_shapes(params, root).parent / name)


class _ShapesLoader:
    """Registered function of a shapes set (a class so that it pickles into loader workers)."""

    def __init__(self, name: str, params: dict, root: str | None, on_error: str):
        self.name, self.params, self.root, self.on_error = name, params, root, on_error

    def __call__(self, on_error: str | None = None) -> list[dict]:
        json_file = ensure_shapes(self.params, self.root)
        return load_coco_json(json_file, json_file.parent / "images", dataset_name=self.name,
                              on_error=on_error or self.on_error)


def shapes_dataset(*, name: str = "shapes_train", num_images: int = SPLITS["shapes_train"]["num_images"],
                   seed: int = SPLITS["shapes_train"]["seed"], image_size: int = DEFAULTS["image_size"],
                   min_objects: int = DEFAULTS["min_objects"], max_objects: int = DEFAULTS["max_objects"],
                   min_size: float = DEFAULTS["min_size"], max_size: float = DEFAULTS["max_size"],
                   occlusion_prob: float = DEFAULTS["occlusion_prob"],
                   max_occluded_fraction: float = DEFAULTS["max_occluded_fraction"],
                   root: str | None = None, on_error: str = "raise") -> list[dict]:
    """Recipe node: register `name` with these parameters, generate or reuse the cached set, return records.

    ``L(shapes_dataset)(name="shapes_val", num_images=250, seed=1, image_size=192)``. Registering
    under the name keeps ``MetadataCatalog.get(name)`` (used by the evaluator) in step with the data.
    A parameter given as None (an interpolation that found no value) is refused with what to set.
    """
    given = generation_parameters(name, image_size=image_size, min_objects=min_objects, max_objects=max_objects,
                                  min_size=min_size, max_size=max_size, occlusion_prob=occlusion_prob,
                                  max_occluded_fraction=max_occluded_fraction)
    register_shapes(name, num_images=num_images, seed=seed, **given, root=root, on_error=on_error)
    return DatasetCatalog.get(name)


def generation_parameters(name: str, **given) -> dict:
    """The generation parameters `given` to a shapes recipe node of data set `name`, refusing any
    that is None: the recipes' val set copies them from ``dataloader.train.dataset``
    (recipes/common/data/shapes*.py), which finds none when the train set is no shapes set."""
    unset = [key for key, value in given.items() if value is None]
    if unset:
        raise DataError(
            f"shapes data set '{name}' got no value for {', '.join(unset)}: in the shapes recipes the val set copies "
            "them from dataloader.train.dataset, which is no shapes set now. Evaluate on your own data: set "
            "dataloader.test.dataset=L(get_dataset)(names='MY_VAL') and evaluator.dataset_name='MY_VAL' next to "
            "dataloader.train.dataset (each evaluator's, where there are several)")
    return given


def register_builtin_shapes() -> None:
    """Register ``shapes_train`` and ``shapes_val`` with the default parameters."""
    for name, split in SPLITS.items():
        register_shapes(name, **split)
