"""COCO evaluation cost: `COCOEvaluator` vs calling pycocotools / faster-coco-eval directly.

Synthetic set: N images with polygon ground truth and D box+mask detections each (jittered
objects plus false positives). For each backend, one timed run is

- raw:       COCO(json) + per task loadRes / evaluate / accumulate / summarize on ready-made
             COCO result lists (the least work anyone can do with that library);
- evaluator: a fresh COCOEvaluator's evaluate() on the same, already processed, predictions
             (reads the JSON, builds task lists, scores, writes predictions + tables); and
             the same without output_dir (nothing written).

Both score bbox and segm. `process()` (Instances -> COCO results, masks RLE-encoded) is timed
separately: the raw path gets its RLEs for free. Times are CPU seconds of this process (all
threads; stable when other jobs share the machine, unlike wall time); the table gives the
median of --runs interleaved runs and the ratio to raw pycocotools measured in the same process.

    python benchmarks/eval.py --images 300 --dets 30 --runs 5
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch

from detrun.data import DatasetCatalog, register_coco_instances
from detrun.evaluation import COCOEvaluator
from detrun.evaluation.coco_backends import faster_coco_eval_installed, load_coco, run_cocoeval
from detrun.evaluation.coco_results import results_for_task
from detrun.structures import Boxes, Instances
from detrun.structures.masks import decode_rle

HEIGHT, WIDTH = 240, 320
TASKS = ("bbox", "segm")


def make_ground_truth(num_images: int, rng: np.random.Generator) -> dict:
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "height": HEIGHT, "width": WIDTH, "file_name": f"{image_id}.jpg"})
        for _ in range(int(rng.integers(3, 12))):
            w, h = rng.uniform(8, 200), rng.uniform(8, 150)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 10))
            polygon = np.stack([x + w / 2 * (1 + np.cos(angles)), y + h / 2 * (1 + np.sin(angles))], 1).ravel()
            rle = mask_util.merge(mask_util.frPyObjects([polygon.tolist()], HEIGHT, WIDTH))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 11)),
                                "bbox": mask_util.toBbox(rle).tolist(), "area": float(mask_util.area(rle)),
                                "iscrowd": int(rng.random() < 0.03), "segmentation": [polygon.tolist()]})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, 11)]
    return {"images": images, "annotations": annotations, "categories": categories}


def make_outputs(gt: dict, dets_per_image: int, rng: np.random.Generator) -> dict:
    """image_id -> {"instances": Instances} of D detections: jittered ground truth, then random boxes."""
    by_image = {img["id"]: [] for img in gt["images"]}
    for ann in gt["annotations"]:
        by_image[ann["image_id"]].append(ann)
    outputs = {}
    for image_id, anns in by_image.items():
        boxes, masks = [], []
        for k in range(dets_per_image):
            if k < len(anns):
                mask = decode_rle(mask_util.merge(mask_util.frPyObjects(anns[k]["segmentation"], HEIGHT, WIDTH)))
                dx, dy = rng.integers(-4, 5, 2)
                mask = np.roll(mask, (int(dy), int(dx)), axis=(0, 1)).astype(bool)
            else:
                mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
                x, y = rng.integers(0, WIDTH - 20), rng.integers(0, HEIGHT - 20)
                mask[y:y + int(rng.integers(5, 100)), x:x + int(rng.integers(5, 120))] = True
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 1, 1])
            masks.append(mask)
        classes = [a["category_id"] - 1 for a in anns[:dets_per_image]]
        classes += rng.integers(0, 10, dets_per_image - len(classes)).tolist()
        outputs[image_id] = {"instances": Instances(
            (HEIGHT, WIDTH), pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
            scores=torch.from_numpy(rng.uniform(0.05, 1, dets_per_image).astype(np.float32)),
            pred_classes=torch.tensor(classes), pred_masks=torch.from_numpy(np.stack(masks)))}
    return outputs


def time_raw(json_file: Path, task_results: dict, backend: str) -> tuple[float, dict]:
    """COCO(json) + COCOeval per task, as a user would call the library by hand."""
    fresh = {t: [dict(r) for r in rs] for t, rs in task_results.items()}  # loadRes writes into them
    gc.collect()  # don't charge this run for the previous one's garbage
    start = time.process_time()
    coco_gt = load_coco(json.loads(json_file.read_text()), backend)
    stats = {}
    for task in TASKS:
        coco_eval = run_cocoeval(coco_gt, fresh[task], task, backend=backend)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval.summarize()
        stats[task] = coco_eval.stats[0] * 100
    return time.process_time() - start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--dets", type=int, default=30, help="detections per image")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    workdir = Path(tempfile.mkdtemp(prefix="detrun_bench_eval_"))
    gt = make_ground_truth(args.images, rng)
    json_file = workdir / "gt.json"
    json_file.write_text(json.dumps(gt))
    register_coco_instances("bench_eval", str(json_file), str(workdir))
    records = DatasetCatalog.get("bench_eval")
    outputs = make_outputs(gt, args.dets, rng)
    backends = ["pycocotools"] + (["faster_coco_eval"] if faster_coco_eval_installed() else [])

    evaluator = COCOEvaluator("bench_eval", tasks=list(TASKS), backend="pycocotools", output_dir=str(workdir))
    process_times = []
    for _ in range(args.runs):
        evaluator.reset()
        start = time.process_time()
        for r in records:
            evaluator.process([r], [outputs[r["image_id"]]])
        process_times.append(time.process_time() - start)
    processed = evaluator._predictions  # the state evaluate() starts from, reused for every timed run
    results = [r for p in processed for r in p["results"]]
    task_results = {t: results_for_task(results, t) for t in TASKS}

    rows, reference = [], None
    for backend in backends:
        times = {"raw": [], "evaluator": [], "evaluator, no output_dir": []}
        for _ in range(args.runs):
            seconds, raw_ap = time_raw(json_file, task_results, backend)
            times["raw"].append(seconds)
            for variant, output_dir in (("evaluator", str(workdir)), ("evaluator, no output_dir", None)):
                fresh = COCOEvaluator("bench_eval", tasks=list(TASKS), backend=backend, output_dir=output_dir)
                fresh._predictions = processed
                gc.collect()
                start = time.process_time()
                metrics = fresh.evaluate()
                times[variant].append(time.process_time() - start)
                for task in TASKS:  # same predictions, same numbers, or the timing is meaningless
                    assert abs(metrics[task]["AP"] - raw_ap[task]) < 1e-9, (backend, task, metrics[task]["AP"], raw_ap[task])
        raw = statistics.median(times["raw"])
        reference = reference or raw
        rows.append((f"raw {backend}", raw, raw / reference, ""))
        for variant in ("evaluator", "evaluator, no output_dir"):
            seconds = statistics.median(times[variant])
            rows.append((f"COCOEvaluator({backend}){variant[9:]}", seconds, seconds / reference, f"{seconds / raw - 1:+.1%}"))

    print(f"{args.images} images x {args.dets} detections (boxes + masks {HEIGHT}x{WIDTH}), bbox + segm, "
          f"median of {args.runs} runs")
    print(f"process(): {statistics.median(process_times) / args.images * 1e3:.2f} ms/image "
          "(Instances -> COCO results, RLE encoding)")
    print("| path | CPU seconds | vs raw pycocotools | overhead over its raw backend |")
    print("|---|---|---|---|")
    for name, seconds, ratio, overhead in rows:
        print(f"| {name} | {seconds:.3f} | {ratio:.2f}x | {overhead} |")


if __name__ == "__main__":
    main()
