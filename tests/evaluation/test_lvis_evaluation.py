"""LVISEvaluator against the lvis package's LVISEval run directly, and federated rules checked by hand."""
from __future__ import annotations

import json
import math
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detrun.data import DatasetCatalog, MetadataCatalog, register_lvis_instances
from detrun.errors import UserError
from detrun.evaluation import summary_table
from detrun.evaluation.lvis_evaluation import METRICS, LVISEvaluator, numpy_float_alias
from detrun.structures import Boxes, Instances

H, W = 64, 80
CATEGORY_IDS = [1, 2, 5, 9]  # LVIS ids; contiguous 0..3
FREQUENCY = {1: "f", 2: "c", 5: "r", 9: "f"}


def _gt_dict(seed: int = 0, num_images: int = 6) -> dict:
    """Random boxes (polygon masks inside them) over all area ranges, random neg/not-exhaustive lists."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for image_id in range(1, num_images + 1):
        present = set()
        for _ in range(rng.integers(1, 5)):
            w, h = rng.uniform(4, 60), rng.uniform(4, 50)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            cat = int(rng.choice(CATEGORY_IDS))
            present.add(cat)
            poly = [x, y, x + w, y, x + w * 0.8, y + h, x, y + h * 0.7]
            rle = mask_util.frPyObjects([poly], H, W)[0]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h],
                         "area": float(mask_util.area(rle)), "segmentation": [poly]})
        absent = [c for c in CATEGORY_IDS if c not in present]
        images.append({"id": image_id, "height": H, "width": W, "coco_url": f"x/val2017/{image_id:012d}.jpg",
                       "neg_category_ids": [c for c in absent if rng.random() < 0.5],
                       "not_exhaustive_category_ids": [c for c in present if rng.random() < 0.3]})
    cats = [{"id": c, "name": f"class{c}", "frequency": FREQUENCY[c]} for c in CATEGORY_IDS]
    return {"images": images, "annotations": anns, "categories": cats}


def _predictions(gt: dict, seed: int = 1) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: boxes XYXY float[N, 4], scores float[N], contiguous classes int[N], masks bool[N, H, W];
    jittered ground truth (some with a wrong class) plus random boxes."""
    rng = np.random.default_rng(seed)
    out = {}
    for img in gt["images"]:
        boxes = [a["bbox"] for a in gt["annotations"] if a["image_id"] == img["id"]]
        classes = [CATEGORY_IDS.index(a["category_id"]) for a in gt["annotations"] if a["image_id"] == img["id"]]
        n_random = int(rng.integers(2, 8))
        boxes = np.array(boxes + [[rng.uniform(0, 40), rng.uniform(0, 30), rng.uniform(4, 40), rng.uniform(4, 30)]
                                  for _ in range(n_random)])
        boxes[:, :2] += rng.normal(0, 1.5, (len(boxes), 2))
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).clip(0, [W, H, W, H])
        classes = np.array(classes + list(rng.integers(0, len(CATEGORY_IDS), n_random)))
        flip = rng.random(len(classes)) < 0.2
        classes[flip] = rng.integers(0, len(CATEGORY_IDS), int(flip.sum()))
        out[img["id"]] = (xyxy, rng.random(len(xyxy)), classes, _box_masks(xyxy))
    return out


def _register(tmp_path, gt: dict, name: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(gt))
    register_lvis_instances(name, path, tmp_path, overwrite=True)
    return str(path)


def _evaluate(name: str, predictions: dict, **kwargs) -> dict:
    evaluator = LVISEvaluator(name, distributed=False, **kwargs)
    assert evaluator.backend == "lvis"
    evaluator.reset()
    for image_id, (boxes, scores, classes, masks) in predictions.items():
        instances = Instances((H, W), pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
                              scores=torch.tensor(scores, dtype=torch.float32),
                              pred_classes=torch.tensor(classes), pred_masks=torch.from_numpy(masks))
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    return evaluator.evaluate()


def _reference(path: str, predictions: dict, task: str, max_dets: int = 300) -> dict:
    """LVISEval run directly on result dicts built here (bbox XYWH, RLE masks, LVIS category ids)."""
    lvis = pytest.importorskip("lvis")
    results = []
    for image_id, (boxes, scores, classes, masks) in predictions.items():
        for box, score, cls, mask in zip(boxes.astype(np.float32).astype(float), scores.astype(np.float32), classes,
                                         masks):
            result = {"image_id": image_id, "category_id": CATEGORY_IDS[cls], "score": float(score)}
            if task == "bbox":  # Detectron2 passes segm results without their box: LVISResults would use it
                result["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            else:
                result["segmentation"] = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            results.append(result)
    with numpy_float_alias():  # lvis 0.5.3 calls np.float, gone from NumPy 2
        gt = lvis.LVIS(path)
        lvis_eval = lvis.LVISEval(gt, lvis.LVISResults(gt, results, max_dets=max_dets), task)
        lvis_eval.run()
    return {k: v * 100 if v > -1 else math.nan for k, v in lvis_eval.get_results().items() if k in METRICS}


@pytest.mark.parametrize("max_dets", [300, 3])
def test_lvis_evaluator_equals_lvis_eval(tmp_path, max_dets):
    pytest.importorskip("lvis")
    gt = _gt_dict()
    path = _register(tmp_path, gt, "test_lvis_eval")
    predictions = _predictions(gt)
    ours = _evaluate("test_lvis_eval", predictions, max_dets_per_image=max_dets)
    assert set(ours) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        reference = _reference(path, predictions, task, max_dets)
        assert {k: ours[task][k] for k in METRICS} == pytest.approx(reference, abs=1e-9, nan_ok=True)
        assert 0 < ours[task]["AP"] < 100 and not math.isnan(ours[task]["APr"])
        assert sum(not math.isnan(ours[task][f"AP-class{c}"]) for c in CATEGORY_IDS) >= 3
    header = summary_table(ours).splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")] == ["task", *METRICS]


def _box_masks(xyxy: np.ndarray) -> np.ndarray:
    """bool[N, H, W]: each box filled (rounded to pixels)."""
    masks = np.zeros((len(xyxy), H, W), dtype=bool)
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(xyxy).round().astype(int)):
        masks[k, y0:y1, x0:x1] = True
    return masks


def _federated_case(tmp_path, *, neg_2: list[int], not_exhaustive_1: list[int]) -> dict:
    """bbox metrics of: image 1 showing class "one" at A, image 2 class "two" at B; detections: the exact
    boxes (score 0.5) and a class-one box elsewhere on each image (D on 1, C on 2; score 0.9).
    `neg_2` is image 2's neg_category_ids, `not_exhaustive_1` image 1's not_exhaustive_category_ids."""
    A, B, C, D = [10, 10, 30, 20], [40, 30, 20, 20], [5, 40, 20, 15], [50, 5, 20, 10]
    image = lambda i, neg, ne: {"id": i, "height": H, "width": W, "neg_category_ids": neg,  # noqa: E731
                                "not_exhaustive_category_ids": ne}
    gt = {"categories": [{"id": 1, "name": "one", "frequency": "f"}, {"id": 2, "name": "two", "frequency": "r"}],
          "images": [image(1, [], not_exhaustive_1), image(2, neg_2, [])],
          "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": i + 1, "bbox": [x, y, w, h],
                           "area": float(w * h), "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}
                          for i, (x, y, w, h) in enumerate([A, B])]}
    name = f"test_lvis_federated_{neg_2}_{not_exhaustive_1}"
    _register(tmp_path, gt, name)
    predictions = {}
    for image_id, boxes, classes in [(1, [A, D], [0, 0]), (2, [B, C], [1, 0])]:
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=float)
        predictions[image_id] = (xyxy, np.array([0.5, 0.9]), np.array(classes), _box_masks(xyxy))
    return _evaluate(name, predictions, tasks=["bbox"])["bbox"]


@pytest.mark.parametrize("neg_2, not_exhaustive_1, ap_one", [
    ([], [1], 100.0),  # C: class one unverified on image 2, not judged; D: image 1's class one not exhaustive
    ([1], [1], 50.0),  # C is a false positive ranked above the true box: precision 1/2 at recall 1
    ([], [], 50.0),  # D is the false positive instead
    ([1], [], 100 / 3),  # both: two false positives ranked first
])
def test_federated_rules_by_hand(tmp_path, neg_2, not_exhaustive_1, ap_one):
    pytest.importorskip("lvis")
    metrics = _federated_case(tmp_path, neg_2=neg_2, not_exhaustive_1=not_exhaustive_1)
    # exact boxes: the same precision at every IoU threshold; class two is never confused
    assert metrics["AP-one"] == pytest.approx(ap_one) and metrics["AP-two"] == pytest.approx(100)
    assert metrics["AP"] == pytest.approx((ap_one + 100) / 2)
    assert metrics["APf"] == pytest.approx(ap_one) and metrics["APr"] == pytest.approx(100)
    assert math.isnan(metrics["APc"])


def test_missing_lvis_package_names_the_extra(tmp_path, monkeypatch):
    _register(tmp_path, _gt_dict(num_images=1), "test_lvis_no_package")
    monkeypatch.setitem(sys.modules, "lvis", None)  # import lvis → ImportError
    with pytest.raises(UserError, match=r"pip install 'detrun\[lvis\]'"):
        LVISEvaluator("test_lvis_no_package")


def test_bad_tasks_and_ground_truth(tmp_path):
    pytest.importorskip("lvis")
    _register(tmp_path, _gt_dict(num_images=1), "test_lvis_tasks")
    with pytest.raises(UserError, match="subset of"):
        LVISEvaluator("test_lvis_tasks", tasks=["keypoints"])
    _register(tmp_path, _gt_dict(num_images=1), "test_lvis_gone")
    (tmp_path / "test_lvis_gone.json").unlink()
    with pytest.raises(UserError, match=r"test_lvis_gone\.json' does not exist"):
        LVISEvaluator("test_lvis_gone")
    # a data set registered from records has no LVIS file to evaluate against
    DatasetCatalog.register("test_lvis_records", lambda: [{"image_id": 1}], overwrite=True)
    MetadataCatalog.get("test_lvis_records").set(thing_classes=["a"])
    evaluator = LVISEvaluator("test_lvis_records", distributed=False)
    empty = Instances((H, W), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0),
                      pred_classes=torch.zeros(0, dtype=torch.long))
    evaluator.process([{"image_id": 1}], [{"instances": empty}])
    with pytest.raises(UserError, match="register_lvis_instances"):
        evaluator.evaluate()
