"""Training-loader throughput: detrun's loader vs a plain torchvision v2 pipeline doing the same work.

Two data sets:
- shapes: 256 images of the built-in synthetic set at its default parameters (192² PNG, 2-6 objects,
  polygons); augmentation = random horizontal flip.
- coco-sized: 16 synthetic 640x480 JPEGs with 7 polygon objects each; augmentation = short side
  drawn from 640..800 (long side <= 1333) + random horizontal flip, like COCO training recipes.

Both pipelines read and decode the file, transform image, boxes and masks, and return
list[dict] batches of 4. detrun keeps masks as polygons (transformed as points); the torchvision
baseline (decode_image + v2.RandomShortestSize + v2.RandomHorizontalFlip on tv_tensors) has to
rasterize them to bitmaps (pycocotools) and resize those. Each configuration runs with 0 and 2
loader workers; a run times `--batches` batches on a warm iterator; the table gives the median
images/s (wall clock) of `--runs` runs, and for 0 workers also CPU ms per image of this process
(stable when other jobs share the machine).

    python benchmarks/data.py --runs 5 --batches 20
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from detrun.data import DatasetMapper, build_train_loader, load_coco_json
from detrun.data.datasets.shapes import DEFAULTS, _params, ensure_shapes
from detrun.data.transforms import RandomFlip, ResizeShortestEdge
from detrun.structures import BoxMode, decode_rle

BATCH = 4
COCO_SHORT = [640, 672, 704, 736, 768, 800]


def shapes_records(root: Path) -> list[dict]:
    json_file = ensure_shapes(_params(256, 0, **DEFAULTS), root)
    return load_coco_json(json_file, json_file.parent / "images")


def coco_sized_records(root: Path, n: int = 16) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        h, w = 480, 640
        img = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        path = root / f"{i}.jpg"
        Image.fromarray(img).resize((w, h), Image.BILINEAR).save(path, quality=90)
        anns = []
        for k in range(7):
            cx, cy, r = rng.uniform(80, w - 80), rng.uniform(80, h - 80), rng.uniform(20, 70)
            ang = np.sort(rng.uniform(0, 2 * np.pi, 24))
            poly = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).reshape(-1).tolist()
            xs, ys = poly[0::2], poly[1::2]
            anns.append({"bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "bbox_mode": BoxMode.XYWH_ABS,
                         "category_id": int(rng.integers(80)), "segmentation": [poly], "iscrowd": 0, "id": i * 10 + k})
        records.append({"file_name": str(path), "height": h, "width": w, "image_id": i, "annotations": anns})
    return records


class TorchvisionDataset(Dataset):
    """The baseline: decode + v2 transforms on image, BoundingBoxes and Mask; returns model-input dicts."""

    def __init__(self, records: list[dict], transform):
        self.records, self.transform = records, transform

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        r = self.records[i % len(self.records)]
        image = decode_image(read_file(r["file_name"]), mode=ImageReadMode.RGB)
        h, w = r["height"], r["width"]
        boxes = torch.tensor([a["bbox"] for a in r["annotations"]], dtype=torch.float32)
        boxes[:, 2:] += boxes[:, :2]
        masks = np.stack([decode_rle(mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w)))
                          for a in r["annotations"]])
        target = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
                  "masks": tv_tensors.Mask(torch.from_numpy(masks)),
                  "labels": torch.tensor([a["category_id"] for a in r["annotations"]])}
        image, target = self.transform(tv_tensors.Image(image), target)
        return {"image": image.as_subclass(torch.Tensor), "instances": target, "image_id": r["image_id"]}


class InfiniteSampler(torch.utils.data.Sampler):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        rng = np.random.default_rng(0)
        while True:
            yield from rng.permutation(self.n).tolist()


def detrun_loader(records, augmentations, workers):
    mapper = DatasetMapper(is_train=True, augmentations=augmentations)
    return build_train_loader(dataset=records, mapper=mapper, total_batch_size=BATCH, num_workers=workers,
                              aspect_ratio_grouping=False, seed=0)


def torchvision_loader(records, transform, workers):
    return DataLoader(TorchvisionDataset(records, transform), batch_size=BATCH, sampler=InfiniteSampler(len(records)),
                      collate_fn=list, num_workers=workers, prefetch_factor=4 if workers else None)


def measure(loader, runs: int, batches: int) -> tuple[float, float]:
    """Median images/s (wall) and median CPU ms per image (this process) over `runs` runs."""
    it = iter(loader)
    for _ in range(3):  # warm up: start workers, fill prefetch queues, page in files
        next(it)
    rates, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        for _ in itertools.islice(it, batches):
            pass
        rates.append(batches * BATCH / (time.perf_counter() - t))
        cpu.append((time.process_time() - c) * 1e3 / (batches * BATCH))
    return statistics.median(rates), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # like a training process that leaves data work to this thread
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "coco").mkdir()
        cases = {
            "shapes 192² PNG": (shapes_records(tmp), [RandomFlip()], v2.RandomHorizontalFlip()),
            "coco-sized 640x480 JPEG": (
                coco_sized_records(tmp / "coco"),
                [ResizeShortestEdge(short_edge_length=COCO_SHORT, max_size=1333), RandomFlip()],
                v2.Compose([v2.RandomShortestSize(min_size=COCO_SHORT, max_size=1333), v2.RandomHorizontalFlip()]),
            ),
        }
        print(f"{'data':<26}{'workers':>8}{'detrun img/s':>14}{'torchvision img/s':>19}{'ratio':>7}"
              f"{'detrun CPU ms/img':>19}{'tv CPU ms/img':>15}")
        for name, (records, augs, tv_transform) in cases.items():
            for workers in (0, 2):
                ours, ours_cpu = measure(detrun_loader(records, augs, workers), args.runs, args.batches)
                ref, ref_cpu = measure(torchvision_loader(records, tv_transform, workers), args.runs, args.batches)
                cpu_cols = f"{ours_cpu:>19.1f}{ref_cpu:>15.1f}" if workers == 0 else f"{'-':>19}{'-':>15}"
                print(f"{name:<26}{workers:>8}{ours:>14.1f}{ref:>19.1f}{ours / ref:>7.2f}{cpu_cols}")


if __name__ == "__main__":
    main()
