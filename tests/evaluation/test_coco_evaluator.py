"""COCOEvaluator against pycocotools run by hand on the same predictions."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from evaltest_data import CATEGORY_IDS, CLASS_NAMES, HEIGHT, KPT_SIGMAS, WIDTH, noisy_outputs, perfect_outputs
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator
from detrun.structures import Boxes, Instances
from detrun.structures.masks import decode_rle

TASKS = ("bbox", "segm", "keypoints")


def run_evaluator(evaluator: COCOEvaluator, records: list[dict], outputs: dict, batch: int = 3) -> dict:
    evaluator.reset()
    for start in range(0, len(records), batch):
        inputs = records[start:start + batch]
        evaluator.process(inputs, [outputs[r["image_id"]] for r in inputs])
    return evaluator.evaluate()


def by_hand(coco_dict: dict, outputs: dict) -> dict:
    """pycocotools on results converted here, independently of detrun's conversion."""
    results = {task: [] for task in TASKS}
    for image_id, output in outputs.items():
        inst = output["instances"]
        for box, score, cls, mask, kps in zip(inst.pred_boxes.tensor.tolist(), inst.scores.tolist(),
                                               inst.pred_classes.tolist(), inst.pred_masks.numpy(),
                                               inst.pred_keypoints.tolist()):
            x0, y0, x1, y1 = box
            common = {"image_id": image_id, "category_id": CATEGORY_IDS[cls], "score": score}
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            results["bbox"].append({**common, "bbox": [x0, y0, x1 - x0, y1 - y0]})
            results["segm"].append({**common, "segmentation": rle})
            # models give continuous coordinates, COCO wants pixel indices: x - 0.5, y - 0.5
            results["keypoints"].append({**common, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                         "keypoints": [v for x, y, s in kps for v in (x - 0.5, y - 0.5, s)]})
    metrics = {}
    for task in TASKS:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = copy.deepcopy(coco_dict)
            gt.createIndex()
            coco_eval = COCOeval(gt, gt.loadRes(results[task]), task)
            if task == "keypoints":
                coco_eval.params.kpt_oks_sigmas = np.array(KPT_SIGMAS)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        names = ["AP", "AP50", "AP75", "APm", "APl"] if task == "keypoints" else ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        metrics[task] = {n: s * 100 if s >= 0 else math.nan for n, s in zip(names, coco_eval.stats)}
        for k, name in enumerate(CLASS_NAMES):
            precision = coco_eval.eval["precision"][:, :, k, 0, -1]
            precision = precision[precision > -1]
            metrics[task][f"AP-{name}"] = precision.mean() * 100 if precision.size else math.nan
    return metrics


def assert_metrics_equal(actual: dict, expected: dict, tol: float = 1e-9) -> None:
    assert actual.keys() == expected.keys()
    for task in expected:
        assert actual[task].keys() == expected[task].keys(), task
        for name, value in expected[task].items():
            got = actual[task][name]
            assert (math.isnan(value) and math.isnan(got)) or abs(got - value) <= tol, (task, name, got, value)


def test_perfect_predictions_score_100(coco_dataset, records):
    results = run_evaluator(COCOEvaluator(coco_dataset, backend="pycocotools"), records, perfect_outputs(records))
    assert set(results) == set(TASKS)
    for task, metrics in results.items():
        assert metrics["AP"] == pytest.approx(100.0), task
        finite = {k: v for k, v in metrics.items() if not math.isnan(v)}
        assert {"AP50", "AP75", "APm", "APl"} <= set(finite)
        assert all(v == pytest.approx(100.0) for v in finite.values()), (task, metrics)
    assert not math.isnan(results["bbox"]["APs"])  # the set has small objects too


def test_no_predictions_score_0(coco_dataset, records):
    empty = Instances((HEIGHT, WIDTH), pred_boxes=Boxes(np.zeros((0, 4), np.float32)), scores=torch.zeros(0),
                      pred_classes=torch.zeros(0, dtype=torch.int64))
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools")
    evaluator.process(records, [{"instances": empty} for _ in records])
    assert list(evaluator.evaluate()) == ["bbox"]  # a box-only model
    empty.pred_masks = torch.zeros(0, HEIGHT, WIDTH, dtype=torch.bool)
    empty.pred_keypoints = torch.zeros(0, 4, 3)
    evaluator.reset()
    evaluator.process(records, [{"instances": empty} for _ in records])
    results = evaluator.evaluate()
    assert set(results) == set(TASKS)  # the fields tell what the model predicts, even with no detections
    for metrics in results.values():
        assert metrics["AP"] == 0.0 and all(v == 0.0 for v in metrics.values())


def test_equals_pycocotools_by_hand_with_crowd(coco_dataset, records, coco_dict):
    assert any(a["iscrowd"] for a in coco_dict["annotations"])
    outputs = noisy_outputs(records)
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools")
    results = run_evaluator(evaluator, records, outputs)
    expected = by_hand(coco_dict, outputs)
    assert_metrics_equal(results, expected)
    assert_metrics_equal(evaluator.evaluate(), expected)  # again, on the kept ground truth
    assert 10 < results["bbox"]["AP"] < 90 and 10 < results["segm"]["AP"] < 90 and 5 < results["keypoints"]["AP"] < 95


def test_dataset_from_list_of_dicts(list_dataset, coco_dataset, records, tmp_path):
    outputs = noisy_outputs(records, seed=2)
    from_json = run_evaluator(COCOEvaluator(coco_dataset, backend="pycocotools"), records, outputs)
    out_dir = tmp_path / "inference"
    evaluator = COCOEvaluator(list_dataset, output_dir=str(out_dir), backend="pycocotools")
    from_list = run_evaluator(evaluator, records, outputs)
    # same objects, so the same AP: areas differ slightly (mask raster vs the JSON's), not the ranges here
    assert_metrics_equal(from_list, from_json)
    cache = out_dir / f"{list_dataset}_coco_format.json"
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    assert_metrics_equal(run_evaluator(COCOEvaluator(list_dataset, output_dir=str(out_dir), backend="pycocotools"),
                                       records, outputs), from_json)
    assert cache.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_string_image_ids(list_dataset, records):
    """Data sets keyed by file name (str ids) are renumbered for pycocotools transparently."""
    renamed = [dict(r, image_id=f"name-{r['image_id']}") for r in records]
    name = list_dataset + "_str"
    DatasetCatalog.register(name, lambda: renamed)
    MetadataCatalog.get(name).set(thing_classes=CLASS_NAMES, keypoint_oks_sigmas=KPT_SIGMAS)
    try:
        outputs = noisy_outputs(records)
        expected = run_evaluator(COCOEvaluator(list_dataset, backend="pycocotools"), records, outputs)
        renamed_outputs = {f"name-{k}": v for k, v in outputs.items()}
        assert_metrics_equal(run_evaluator(COCOEvaluator(name, backend="pycocotools"), renamed, renamed_outputs),
                             expected)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_outputs_written_in_dataset_ids(coco_dataset, records, tmp_path):
    outputs = noisy_outputs(records)
    evaluator = COCOEvaluator(coco_dataset, output_dir=str(tmp_path), tasks=["bbox"], backend="pycocotools")
    results = run_evaluator(evaluator, records, outputs)
    assert list(results) == ["bbox"]
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(written) == sum(len(o["instances"]) for o in outputs.values())
    assert {r["category_id"] for r in written} <= set(CATEGORY_IDS)
    first = outputs[records[0]["image_id"]]["instances"]
    x0, y0, x1, y1 = first.pred_boxes.tensor[0].tolist()
    assert written[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=1e-4)
    assert decode_rle(written[0]["segmentation"]).astype(bool).tolist() == first.pred_masks[0].tolist()
    table = (tmp_path / "per_category_ap.txt").read_text()
    assert all(name in table for name in CLASS_NAMES)


def test_only_processed_images_are_scored(coco_dataset, records):
    """Evaluating a subset scores that subset, and a repeated image (sampler padding) counts once."""
    outputs = perfect_outputs(records)
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools", tasks=["bbox"])
    subset = records[:4]
    evaluator.process(subset, [outputs[r["image_id"]] for r in subset])
    evaluator.process(subset[:1], [outputs[subset[0]["image_id"]]])
    assert evaluator.evaluate()["bbox"]["AP"] == pytest.approx(100.0)


def test_clear_errors(coco_dataset, records):
    with pytest.raises(UserError, match="not a registered data set"):
        COCOEvaluator("no_such_dataset")
    with pytest.raises(UserError, match="tasks"):
        COCOEvaluator(coco_dataset, tasks=["boxes"])
    with pytest.raises(UserError, match="backend"):
        COCOEvaluator(coco_dataset, backend="fast")
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools")
    bad = dict(records[0], image_id=12345)
    evaluator.process([bad], [perfect_outputs(records)[records[0]["image_id"]]])
    with pytest.raises(UserError, match="12345"):
        evaluator.evaluate()
    boxes_only = perfect_outputs(records[:1])[records[0]["image_id"]]["instances"]
    boxes_only.remove("pred_masks")
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools", tasks=["segm"])
    evaluator.process(records[:1], [{"instances": boxes_only}])
    with pytest.raises(UserError, match="no pred_masks"):
        evaluator.evaluate()
