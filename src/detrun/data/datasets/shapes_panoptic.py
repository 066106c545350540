"""The panoptic variant of the synthetic shapes set: shapes ("things") on "stuff" regions.

Each image's background is split into 2-3 regions (the cells of random, well-separated seed
points: straight borders), each painted with a different stuff class: "stripes" (high-contrast
sinusoidal stripes), "checker" (a two-colour checkerboard) and "noise" (smooth colour blobs).
Circles, squares and triangles are drawn on top exactly as in the plain shapes set.

Written as real COCO files, in Detectron2's "separated" layout (see `coco_panoptic`):
``images/*.png``, ``instances.json`` (things: polygons, boxes), ``panoptic/*.png`` +
``panoptic.json`` (every pixel a segment: one per object, one per stuff class present) and
``panoptic_semseg/*.png`` (things 0, stripes 1, checker 2, noise 3). Category ids: things 1-3,
stuff 11-13 (not contiguous, like COCO's). No pixel is void and nothing is crowd.

Cache: ``$DETRUN_DATASETS/shapes_panoptic/<hash of the parameters>/``; built-in names
``shapes_panoptic_train`` (1000 images) and ``shapes_panoptic_val`` (100), 192 px.
"""
from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import DatasetCatalog, MetadataCatalog
from ..problems import DataError
from .coco_panoptic import attach_panoptic, id2rgb, panoptic_categories, semantic_labels
from .coco import load_coco_json
from .mask_tracing import mask_to_polygons
from .paths import datasets_root
from .shapes import DEFAULTS, _params, ensure_generated, generation_parameters
from .shapes_render import CLASSES, render_image

# Bump when the drawing changes what a (seed, parameters) pair produces, to invalidate caches.
GENERATOR_VERSION = 1
STUFF_CLASSES = ("stripes", "checker", "noise")
THING_IDS = (1, 2, 3)
STUFF_IDS = (11, 12, 13)
THING_COLORS = [[220, 60, 60], [60, 180, 75], [70, 110, 230]]
STUFF_COLORS = [[240, 200, 40], [150, 60, 200], [40, 200, 200]]
SPLITS = {"shapes_panoptic_train": dict(num_images=1000, seed=10), "shapes_panoptic_val": dict(num_images=100, seed=11)}


class StuffBackground:
    """A background painter for `render_image` that keeps the stuff class of every pixel.

    After a call, `regions` is int [S, S] holding each pixel's stuff class index (into STUFF_CLASSES).
    """

    def __init__(self):
        self.regions: np.ndarray | None = None

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        count = int(rng.integers(2, 4))
        classes = rng.permutation(len(STUFF_CLASSES))[:count]
        # Seeds at least a third of the image apart, so no region is a sliver.
        for _ in range(50):
            seeds = rng.uniform(0, size, (count, 2))
            gaps = np.linalg.norm(seeds[:, None] - seeds[None], axis=-1) + np.eye(count) * size
            if gaps.min() >= size / 3:
                break
        centres = np.arange(size, dtype=np.float32) + 0.5
        dist = (centres[None, None, :] - seeds[:, 0, None, None].astype(np.float32)) ** 2 \
            + (centres[None, :, None] - seeds[:, 1, None, None].astype(np.float32)) ** 2
        cell = dist.argmin(axis=0)
        self.regions = classes[cell]
        img = np.zeros((size, size, 3), dtype=np.float32)
        for k in classes:
            where = self.regions == k
            img[where] = _texture(STUFF_CLASSES[k], rng, size)[where]
        return img


def _texture(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Float [S, S, 3] texture of one stuff class."""
    coords = np.arange(size, dtype=np.float32)
    if name == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 10)
        phase = (coords[None, :] * np.cos(angle) + coords[:, None] * np.sin(angle)) * (2 * np.pi / period)
        base = rng.uniform(70, 185, 3).astype(np.float32)
        return base + np.float32(60) * np.sin(phase).astype(np.float32)[..., None]
    if name == "checker":
        cell = int(rng.integers(6, 11))
        a = rng.uniform(20, 235, 3)
        b = np.clip(a + rng.choice([-1, 1], 3) * rng.uniform(50, 90, 3), 0, 255)
        board = ((coords[None, :] // cell + coords[:, None] // cell) % 2).astype(bool)
        return np.where(board[..., None], a, b).astype(np.float32)
    coarse = rng.uniform(30, 225, (4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)


def panoptic_params(num_images: int, seed: int, **render) -> dict:
    """The shapes parameters (`shapes._params`) of a panoptic set, with this generator's version."""
    params = _params(num_images, seed, **render)
    params["version"] = f"panoptic-{GENERATOR_VERSION}"
    return params


def shapes_panoptic_cache_dir(params: dict, root: str | os.PathLike | None = None) -> Path:
    """Folder of the generated panoptic set for `params`: ``<root>/shapes_panoptic/<hash>``."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root if root is not None else datasets_root()) / "shapes_panoptic" / digest


def _render_chunk(args: tuple[dict, list[int], str]) -> tuple[list[dict], list[dict], list[dict]]:
    """Render and save images `indices`: (image entries, instance annotations, panoptic annotations)."""
    params, indices, out_dir = args
    render_kw = {k: params[k] for k in DEFAULTS}
    stuff_map = {sid: i + 1 for i, sid in enumerate(STUFF_IDS)}
    images, instances, panoptic = [], [], []
    for index in indices:
        for attempt in range(100):
            background = StuffBackground()
            img, objects = render_image(np.random.default_rng([params["seed"], index, attempt]),
                                        background=background, **render_kw)
            traced = [mask_to_polygons(o.mask) for o in objects]
            if not any(holes for _, holes in traced):  # COCO polygons can't express holes: redraw
                break
        name = f"{index:06d}"
        size = params["image_size"]
        Image.fromarray(img).save(os.path.join(out_dir, "images", f"{name}.png"), compress_level=1)
        images.append({"id": index + 1, "file_name": f"{name}.png", "height": size, "width": size})
        ids = np.zeros((size, size), dtype=np.int64)
        segments = []
        for obj, (polygons, _) in zip(objects, traced):
            box = _bbox(obj.mask)
            instances.append({"image_id": index + 1, "category_id": THING_IDS[obj.cls], "bbox": box,
                              "area": int(obj.mask.sum()), "iscrowd": 0, "segmentation": polygons})
            ids[obj.mask] = len(segments) + 1
            segments.append({"id": len(segments) + 1, "category_id": THING_IDS[obj.cls], "iscrowd": 0, "bbox": box,
                             "area": int(obj.mask.sum())})
        things = ids > 0
        for k in np.unique(background.regions):
            mask = (background.regions == k) & ~things
            if mask.any():
                ids[mask] = len(segments) + 1
                segments.append({"id": len(segments) + 1, "category_id": STUFF_IDS[k], "iscrowd": 0,
                                 "bbox": _bbox(mask), "area": int(mask.sum())})
        Image.fromarray(id2rgb(ids)).save(os.path.join(out_dir, "panoptic", f"{name}.png"), compress_level=1)
        Image.fromarray(semantic_labels(ids, segments, stuff_map)).save(
            os.path.join(out_dir, "panoptic_semseg", f"{name}.png"), compress_level=1)
        panoptic.append({"image_id": index + 1, "file_name": f"{name}.png", "segments_info": segments})
    return images, instances, panoptic


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]


def generate_shapes_panoptic(params: dict, out_dir: str | os.PathLike, *, workers: int | None = None) -> Path:
    """Render the panoptic set described by `params` into `out_dir`; returns ``panoptic.json``'s path."""
    out_dir = Path(out_dir)
    for sub in ("images", "panoptic", "panoptic_semseg"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    n = params["num_images"]
    if workers is None:  # below ~64 images, starting processes costs more than it saves
        workers = (os.cpu_count() or 1) if n >= 64 else 1
    workers = max(1, min(workers, n))
    jobs = [(params, list(range(i, n, workers * 4)), str(out_dir)) for i in range(min(n, workers * 4))]
    if workers == 1:
        results = [_render_chunk(job) for job in jobs]
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            results = pool.map(_render_chunk, jobs)
    images = sorted((im for r in results for im in r[0]), key=lambda im: im["id"])
    instances = sorted((a for r in results for a in r[1]), key=lambda a: a["image_id"])
    panoptic = sorted((a for r in results for a in r[2]), key=lambda a: a["image_id"])
    for i, ann in enumerate(instances):
        ann["id"] = i + 1
    things = [{"id": i, "name": n, "supercategory": "shape", "isthing": 1, "color": c}
              for i, n, c in zip(THING_IDS, CLASSES, THING_COLORS)]
    stuff = [{"id": i, "name": n, "supercategory": "texture", "isthing": 0, "color": c}
             for i, n, c in zip(STUFF_IDS, STUFF_CLASSES, STUFF_COLORS)]
    info = {"description": "detrun synthetic shapes, panoptic", "params": params}
    (out_dir / "instances.json").write_text(json.dumps(
        {"info": info, "images": images, "annotations": instances,
         "categories": [{k: v for k, v in c.items() if k not in ("isthing", "color")} for c in things]},
        separators=(",", ":")))
    (out_dir / "panoptic.json").write_text(json.dumps(
        {"info": info, "images": images, "annotations": panoptic, "categories": things + stuff},
        separators=(",", ":")))
    (out_dir / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True))
    return out_dir / "panoptic.json"


def ensure_shapes_panoptic(params: dict, root: str | os.PathLike | None = None) -> Path:
    """The cached set's folder for `params`, generated first if needed (safe with several processes)."""
    out_dir = shapes_panoptic_cache_dir(params, root)
    ensure_generated(out_dir, "panoptic.json", functools.partial(generate_shapes_panoptic, params),
                     f"{params['num_images']} panoptic shapes images")
    return out_dir


def register_shapes_panoptic(name: str, *, num_images: int, seed: int, image_size: int = DEFAULTS["image_size"],
                             min_objects: int = DEFAULTS["min_objects"], max_objects: int = DEFAULTS["max_objects"],
                             min_size: float = DEFAULTS["min_size"], max_size: float = DEFAULTS["max_size"],
                             occlusion_prob: float = DEFAULTS["occlusion_prob"],
                             max_occluded_fraction: float = DEFAULTS["max_occluded_fraction"],
                             root: str | None = None, on_error: str = "raise") -> None:
    """(Re-)register `name` as a panoptic shapes set (nothing is generated until it is used)."""
    params = panoptic_params(num_images, seed, image_size=image_size, min_objects=min_objects,
                             max_objects=max_objects, min_size=min_size, max_size=max_size,
                             occlusion_prob=occlusion_prob, max_occluded_fraction=max_occluded_fraction)
    DatasetCatalog.register(name, _ShapesPanopticLoader(name, params, root, on_error), overwrite=True)
    meta = MetadataCatalog.get(name)
    meta.clear()  # in place: an evaluator built earlier for `name` sees these parameters too
    stuff = panoptic_categories([{"id": i, "name": n, "isthing": 0, "color": c}
                                 for i, n, c in zip(STUFF_IDS, STUFF_CLASSES, STUFF_COLORS)])
    meta.set(
        thing_classes=list(CLASSES),
        thing_dataset_id_to_contiguous_id={i: k for k, i in enumerate(THING_IDS)},
        thing_colors=THING_COLORS,
        stuff_classes=stuff["stuff_classes"],
        stuff_colors=stuff["stuff_colors"],
        stuff_dataset_id_to_contiguous_id=stuff["stuff_dataset_id_to_contiguous_id"],
        ignore_label=255,
        evaluator_type="coco",
        shapes_params=params,
    )
    for key, sub in (("json_file", "instances.json"), ("image_root", "images"), ("panoptic_json", "panoptic.json"),
                     ("panoptic_root", "panoptic"), ("sem_seg_root", "panoptic_semseg")):
        meta.set_lazy(key, functools.partial(_path, params, root, sub))


def _path(params: dict, root: str | None, sub: str) -> str:
    return str(ensure_shapes_panoptic(params, root) / sub)


class _ShapesPanopticLoader:
    """Registered function of a panoptic shapes set (a class so that it pickles into loader workers)."""

    def __init__(self, name: str, params: dict, root: str | None, on_error: str):
        self.name, self.params, self.root, self.on_error = name, params, root, on_error

    def __call__(self, on_error: str | None = None) -> list[dict]:
        from ..problems import ProblemLog

        folder = ensure_shapes_panoptic(self.params, self.root)
        on_error = on_error or self.on_error
        records = load_coco_json(folder / "instances.json", folder / "images", dataset_name=self.name,
                                 on_error=on_error)
        log = ProblemLog(on_error)
        records = attach_panoptic(records, folder / "panoptic.json", folder / "panoptic", folder / "panoptic_semseg",
                                  MetadataCatalog.get(self.name).thing_dataset_id_to_contiguous_id, log=log)
        log.warn_summary(str(folder / "panoptic.json"))
        return records


def shapes_panoptic_dataset(*, name: str = "shapes_panoptic_train",
                            num_images: int = SPLITS["shapes_panoptic_train"]["num_images"],
                            seed: int = SPLITS["shapes_panoptic_train"]["seed"], image_size: int = DEFAULTS["image_size"],
                            min_objects: int = DEFAULTS["min_objects"], max_objects: int = DEFAULTS["max_objects"],
                            min_size: float = DEFAULTS["min_size"], max_size: float = DEFAULTS["max_size"],
                            occlusion_prob: float = DEFAULTS["occlusion_prob"],
                            max_occluded_fraction: float = DEFAULTS["max_occluded_fraction"],
                            root: str | None = None, on_error: str = "raise") -> list[dict]:
    """Recipe node: register `name` as a panoptic shapes set with these parameters and return its
    records (see `shapes.shapes_dataset`, whose arguments these are)."""
    given = generation_parameters(name, image_size=image_size, min_objects=min_objects, max_objects=max_objects,
                                  min_size=min_size, max_size=max_size, occlusion_prob=occlusion_prob,
                                  max_occluded_fraction=max_occluded_fraction)
    register_shapes_panoptic(name, num_images=num_images, seed=seed, **given, root=root, on_error=on_error)
    return DatasetCatalog.get(name)


def register_builtin_shapes_panoptic() -> None:
    """Register ``shapes_panoptic_train`` and ``shapes_panoptic_val`` with the default parameters."""
    for name, split in SPLITS.items():
        register_shapes_panoptic(name, **split)
