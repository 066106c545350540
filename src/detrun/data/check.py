"""``python -m detrun task=check_data dataset=NAME``: load a data set and report on it, without training.

Prints image and instance counts per class, the category-id mapping, empty images and every
problem found (bad annotations, duplicate ids, missing/corrupt images, size mismatches; for
panoptic sets also every panoptic PNG against its JSON entry: ids, categories, areas), and
writes the same report to ``<run_dir>/check_data.txt``. Raises DataError at the end if there
were problems, so the command exits non-zero.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from detrun.config import instantiate
from detrun.errors import UserError

from .catalog import DatasetCatalog, MetadataCatalog
from .datasets import load_coco_json
from .datasets.coco_panoptic import panoptic_problems
from .datasets.lvis import load_lvis_json
from .image_io import check_image_size, read_image
from .problems import DataError, ProblemLog
from .validation import validate_records

logger = logging.getLogger(__name__)


def run_check_data(cfg: DictConfig, run_dir: Path) -> None:
    """Check the data set named by ``cfg.dataset`` and print the report (see module docstring)."""
    name = cfg.get("dataset")
    if not name:
        raise UserError(f"task=check_data needs dataset=NAME; registered data sets: {', '.join(DatasetCatalog.list())}")
    _register_from_recipe(cfg, name)
    if name not in DatasetCatalog:
        DatasetCatalog.get(name)  # raises the unknown-name error with suggestions
    report = check_dataset(name)
    print(report.text)
    Path(run_dir, "check_data.txt").write_text(report.text + "\n")
    if report.problems:
        raise DataError(f"data set '{name}' has {len(report.problems)} problems (listed above and in "
                        f"{Path(run_dir, 'check_data.txt')})")


def _register_from_recipe(cfg: DictConfig, name: str) -> None:
    """If a loader in the recipe builds data set `name` with parameters (e.g. shapes_dataset), build that
    node so the check sees the same data as training."""
    for split in ("train", "test"):
        node = OmegaConf.select(cfg, f"dataloader.{split}.dataset", default=None)
        if isinstance(node, DictConfig) and node.get("name") == name and "_target_" in node:
            instantiate(node)


class CheckReport:
    def __init__(self, text: str, problems: list):
        self.text, self.problems = text, problems


def check_dataset(name: str, *, decode_workers: int = 2) -> CheckReport:
    """Load data set `name` collecting (not raising) every problem; decode every image. Returns the report."""
    meta = MetadataCatalog.get(name)
    log = ProblemLog("skip")
    json_file = meta.get("json_file")
    if json_file is not None:
        if not Path(json_file).is_file():
            DatasetCatalog.get(name)  # the registered loader's error names the path (and $DETRUN_DATASETS)
        load = load_lvis_json if meta.get("evaluator_type") == "lvis" else load_coco_json
        records = load(json_file, meta.image_root, log=log)
        source = str(json_file)
    else:
        source = f"data set '{name}'"
        classes = meta.get("thing_classes")
        records = validate_records(DatasetCatalog.get(name, log=log), source=source, log=log,
                                   num_classes=len(classes) if classes else None)
        for dup, n in Counter(r.get("image_id") for r in records).items():
            if n > 1:
                log.add("duplicate image id", source, f"{n} images share id {dup}", image_id=dup)
        ann_ids = Counter(a.get("id") for r in records for a in r.get("annotations", []) if a.get("id") is not None)
        for dup, n in ann_ids.items():
            if n > 1:
                log.add("duplicate annotation id", source, f"{n} annotations share id {dup}", annotation_id=dup)

    if not records:  # get_dataset refuses an empty set, so training would
        log.add("no images", source, "the data set has no (usable) images; training refuses it")

    def check_image(record: dict) -> tuple[str, str] | None:
        try:
            check_image_size(record, read_image(record["file_name"], image_id=record.get("image_id")))
        except DataError as exc:
            msg = str(exc)
            kind = ("missing image" if "does not exist" in msg else "corrupt image" if "decoded" in msg
                    else "unsupported image mode" if "Pillow mode" in msg else "image size mismatch")
            return kind, str(exc)
        return None

    with ThreadPoolExecutor(decode_workers) as pool:  # PIL decodes without holding the GIL
        for record, bad in zip(records, pool.map(check_image, records)):
            if bad is not None:
                log.add(bad[0], record["file_name"], bad[1], image_id=record.get("image_id"))

    extra = []
    if meta.get("panoptic_json") is not None:
        checked = panoptic_problems(meta.panoptic_json, meta.panoptic_root, log,
                                    image_ids={r.get("image_id") for r in records}, workers=decode_workers)
        extra.append(f"  panoptic: {checked} PNGs of {meta.panoptic_json} checked (segment ids, categories, areas); "
                     f"stuff classes: {', '.join(meta.get('stuff_classes') or [])}")
    return CheckReport(_format(name, meta, source, records, log, extra), log.problems)


def _format(name: str, meta, source: str, records: list[dict], log: ProblemLog, extra: list[str] = ()) -> str:
    classes = meta.get("thing_classes") or []
    id_map = meta.get("thing_dataset_id_to_contiguous_id") or {}
    inverse = {v: k for k, v in id_map.items()}
    instances, images, crowd = Counter(), Counter(), Counter()
    empty = []
    for r in records:
        anns = r.get("annotations", [])
        for a in anns:
            (crowd if a.get("iscrowd", 0) else instances)[a["category_id"]] += 1
        for c in {a["category_id"] for a in anns}:
            images[c] += 1
        if not any(not a.get("iscrowd", 0) for a in anns):
            empty.append(r)
    lines = [f"data set '{name}' ({source})",
             f"  images: {len(records)}   instances: {sum(instances.values())}   crowd regions: {sum(crowd.values())}",
             "", f"  {'id':>6} {'contiguous':>10}  {'class':<24} {'images':>8} {'instances':>10} {'crowd':>6}"]
    for c in range(max(len(classes), max(instances, default=-1) + 1)):
        cname = classes[c] if c < len(classes) else "?"
        lines.append(f"  {str(inverse.get(c, '-')):>6} {c:>10}  {cname:<24} {images[c]:>8} {instances[c]:>10} {crowd[c]:>6}")
    lines.append("")
    lines.extend(extra)
    lines.append(f"  images without instances: {len(empty)}" + (
        " (first: " + ", ".join(f"{r['file_name']} (id {r['image_id']})" for r in empty[:5]) + ")" if empty else ""))
    if log.problems:
        counts = Counter(p.kind for p in log.problems)
        lines.append(f"  problems: {len(log.problems)} (" + ", ".join(f"{n} × {k}" for k, n in counts.most_common()) + ")")
        lines.extend(f"    - {p}" for p in log.problems)
    else:
        lines.append("  problems: none")
    return "\n".join(lines)
