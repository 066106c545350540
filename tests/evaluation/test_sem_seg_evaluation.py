"""SemSegEvaluator against a reference written from the metric definitions (per-class masks), a
hand-computed case, evaluator lists and the result tables."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.evaluation import DatasetEvaluators, SemSegEvaluator, per_category_table, summary_table
from detrun.evaluation.sem_seg_evaluation import confusion_matrix, segmentation_metrics

NAMES = ["things", "sky", "grass", "road"]


def reference_metrics(preds, gts, num_classes, ignore=255):
    """mIoU, fwIoU, mACC, pACC and per-class IoU from per-class masks over labelled pixels."""
    pred = np.concatenate([p.reshape(-1) for p in preds])
    gt = np.concatenate([g.reshape(-1) for g in gts])
    labelled = gt != ignore
    pred, gt = pred[labelled], gt[labelled]
    iou, acc, freq = {}, {}, {}
    for c in range(num_classes):
        if not (gt == c).any():
            continue
        inter = np.sum((pred == c) & (gt == c))
        iou[c] = inter / np.sum((pred == c) | (gt == c))
        acc[c] = inter / np.sum(gt == c)
        freq[c] = np.mean(gt == c)
    return {"mIoU": 100 * np.mean(list(iou.values())), "fwIoU": 100 * sum(freq[c] * iou[c] for c in iou),
            "mACC": 100 * np.mean(list(acc.values())), "pACC": 100 * np.mean(pred == gt), "iou": iou}


def test_hand_computed_case():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 3, 3]])  # the prediction on the ignored pixel doesn't count
    m = segmentation_metrics(confusion_matrix(pred, gt, 4, 255), NAMES)
    # things: TP 1, FP 1 (pixel (1, 1)), FN 1 -> 1/3; sky: TP 2, FP 1, FN 1 -> 2/4; grass: 1/2; road: absent
    assert m["IoU-things"] == pytest.approx(100 / 3) and m["IoU-sky"] == pytest.approx(50)
    assert m["IoU-grass"] == pytest.approx(50) and math.isnan(m["IoU-road"]) and math.isnan(m["ACC-road"])
    assert m["mIoU"] == pytest.approx(100 * (1 / 3 + 1 / 2 + 1 / 2) / 3)
    assert m["pACC"] == pytest.approx(100 * 4 / 7)
    assert m["mACC"] == pytest.approx(100 * (1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert m["fwIoU"] == pytest.approx(100 * (2 / 7 / 3 + 3 / 7 / 2 + 2 / 7 / 2))


@pytest.fixture
def label_set(tmp_path):
    """A registered data set of 4 label maps (stuff_classes = NAMES, some pixels 255)."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        gt = rng.integers(0, 4 if i else 3, (20, 30))  # class 3 appears in 3 images only
        gt[rng.random((20, 30)) < 0.1] = 255
        Image.fromarray(gt.astype(np.uint8)).save(tmp_path / f"{i}.png")
        records.append({"file_name": f"{i}.jpg", "image_id": i, "height": 20, "width": 30,
                        "sem_seg_file_name": str(tmp_path / f"{i}.png"), "gt": gt})
    DatasetCatalog.register("semseg_test", lambda: records, overwrite=True)
    MetadataCatalog.get("semseg_test").set(stuff_classes=NAMES, ignore_label=255)
    yield records
    DatasetCatalog.remove("semseg_test")
    MetadataCatalog.remove("semseg_test")


def test_evaluator_matches_reference(label_set):
    rng = np.random.default_rng(1)
    evaluator = SemSegEvaluator("semseg_test")
    evaluator.reset()
    preds = []
    for r in label_set:
        # a noisy copy of the truth as scores: right on ~70 % of pixels
        pred = np.where(rng.random(r["gt"].shape) < 0.7, np.clip(r["gt"], 0, 3), rng.integers(0, 4, r["gt"].shape))
        preds.append(pred)
        scores = torch.nn.functional.one_hot(torch.from_numpy(pred), 4).permute(2, 0, 1).float()
        evaluator.process([{"image_id": r["image_id"]}], [{"sem_seg": scores}])
    m = evaluator.evaluate()["sem_seg"]
    ref = reference_metrics(preds, [r["gt"] for r in label_set], 4)
    for key in ("mIoU", "fwIoU", "mACC", "pACC"):
        assert m[key] == pytest.approx(ref[key], abs=1e-9), key
    for c, name in enumerate(NAMES):
        assert m[f"IoU-{name}"] == pytest.approx(100 * ref["iou"][c], abs=1e-9)


def test_evaluator_lists_merge_and_tables_render_any_metrics(label_set):
    class FakeAP:
        def reset(self):
            pass

        def process(self, inputs, outputs):
            pass

        def evaluate(self):
            return {"bbox": {"AP": 50.0, "AP50": 70.0, "AP75": 40.0, "APs": 1.0, "APm": 2.0, "APl": 3.0, "AP-cat": 5.0}}

    evaluators = DatasetEvaluators([FakeAP(), SemSegEvaluator("semseg_test")])
    evaluators.reset()
    for r in label_set:
        scores = torch.nn.functional.one_hot(torch.from_numpy(np.clip(r["gt"], 0, 3)), 4).permute(2, 0, 1).float()
        evaluators.process([{"image_id": r["image_id"]}], [{"sem_seg": scores}])
    results = evaluators.evaluate()
    assert set(results) == {"bbox", "sem_seg"} and results["sem_seg"]["mIoU"] == 100
    table = summary_table(results)
    assert "| bbox | 50.000 |" in table and "| sem_seg | 100.000 | 100.000 | 100.000 | 100.000 |" in table
    assert "| task    | mIoU" in table
    per_class = per_category_table(results)
    assert "bbox AP" in per_class and "sem_seg IoU" in per_class and "| sky " in per_class
    with pytest.raises(ValueError, match="two evaluators"):
        DatasetEvaluators([FakeAP(), FakeAP()]).evaluate()


def test_ap_only_tables_are_unchanged():
    results = {"bbox": {"AP": 1.0, "AP50": 2.0, "AP75": 3.0, "APs": 4.0, "APm": 5.0, "APl": float("nan"), "AP-a": 6.0},
               "segm": {"AP": 7.0, "AP50": 8.0, "AP75": 9.0, "APs": 1.0, "APm": 2.0, "APl": 3.0, "AP-a": 4.0}}
    assert summary_table(results).splitlines()[0] == "| task | AP    | AP50  | AP75  | APs   | APm   | APl   |"
    assert len(summary_table(results).splitlines()) == 4
    assert per_category_table(results).splitlines()[0] == "| category | bbox AP | segm AP |"
