"""PQ / SQ / RQ as the COCO panoptic API computes them: a hand-computed case, an independent
reference written from the definition (per-segment masks, not the API's joint-id histogram) on
generated prediction / ground-truth pairs with void and crowd regions, the API itself where the
``panopticapi`` package is installed, and the whole evaluator on a panoptic shapes set
(test_panoptic_reference.py: against torchmetrics, and crowd / void cases by hand)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog, shapes_panoptic_dataset
from detrun.data.datasets.coco_panoptic import id2rgb, read_panoptic_png
from detrun.evaluation import COCOPanopticEvaluator
from detrun.evaluation.panoptic_evaluation import panoptic_metrics, pq_stats

CATEGORIES = {1: {"name": "cat", "isthing": 1}, 2: {"name": "dog", "isthing": 1},
              3: {"name": "sky", "isthing": 0}, 4: {"name": "grass", "isthing": 0}}


def hand_case():
    """10x10. Ground truth: sky rows 0-3; cat rows 4-9 cols 0-3; a crowd of cats rows 4-9 cols 6-9;
    void rows 4-9 cols 4-5. Prediction: sky (rows 0-3, plus row 4 cols 0-5), a cat (rows 5-9
    cols 0-3), a cat on the crowd and void (rows 5-9 cols 5-9), a dog on the crowd (row 4 cols 6-9)."""
    gt = np.zeros((10, 10), np.int64)
    gt[:4] = 1
    gt[4:, :4] = 2
    gt[4:, 6:] = 3
    gt_segments = [{"id": 1, "category_id": 3, "iscrowd": 0, "area": 40},
                   {"id": 2, "category_id": 1, "iscrowd": 0, "area": 24},
                   {"id": 3, "category_id": 1, "iscrowd": 1, "area": 24}]
    pred = np.zeros((10, 10), np.int64)
    pred[:4] = 5
    pred[4, :6] = 5
    pred[5:, :4] = 6
    pred[5:, 5:] = 7
    pred[4, 6:] = 8
    pred_segments = [{"id": 5, "category_id": 3}, {"id": 6, "category_id": 1}, {"id": 7, "category_id": 1},
                     {"id": 8, "category_id": 2}]
    return gt, gt_segments, pred, pred_segments


def test_hand_computed_case():
    stats = pq_stats(*hand_case())
    # sky: IoU 40 / (46 + 40 - 40 - 2 void) = 10/11; cat: 20 / 24 (union 20 + 24 - 20); the cat on
    # crowd + void is ignored (25 of 25 pixels); the dog on a cat crowd is a false positive.
    assert (stats[3].tp, stats[3].fp, stats[3].fn) == (1, 0, 0) and stats[3].iou == pytest.approx(10 / 11)
    assert (stats[1].tp, stats[1].fp, stats[1].fn) == (1, 0, 0) and stats[1].iou == pytest.approx(5 / 6)
    assert (stats[2].tp, stats[2].fp, stats[2].fn) == (0, 1, 0)
    m = panoptic_metrics(stats, CATEGORIES)  # grass has no segments: left out of the averages
    assert m["PQ"] == pytest.approx(100 * (10 / 11 + 5 / 6) / 3)
    assert m["SQ"] == pytest.approx(100 * (10 / 11 + 5 / 6) / 3)
    assert m["RQ"] == pytest.approx(100 * 2 / 3)
    assert (m["PQ_th"], m["RQ_th"]) == (pytest.approx(100 * 5 / 12), pytest.approx(50))
    assert (m["PQ_st"], m["SQ_st"], m["RQ_st"]) == (pytest.approx(100 * 10 / 11), pytest.approx(100 * 10 / 11), 100)
    assert m["PQ-dog"] == 0 and m["PQ-grass"] == 0


def reference_pq(images, categories):
    """PQ from its definition, one segment mask at a time. `images`: (gt ids, gt segments, pred ids,
    pred segments). Returns {"All"|"Things"|"Stuff": (pq, sq, rq)}."""
    tp, fp, fn = ({c: 0 for c in categories} for _ in range(3))
    iou_sum = {c: 0.0 for c in categories}
    for gt_ids, gt_segs, pred_ids, pred_segs in images:
        void = gt_ids == 0
        matched_gt, matched_pred = set(), set()
        for g in gt_segs:
            if g["iscrowd"]:
                continue
            g_mask = gt_ids == g["id"]
            for p in pred_segs:
                if p["category_id"] != g["category_id"]:
                    continue
                p_mask = pred_ids == p["id"]
                inter = np.sum(g_mask & p_mask)
                union = np.sum(g_mask | p_mask) - np.sum(p_mask & void)
                if union and inter / union > 0.5:
                    tp[g["category_id"]] += 1
                    iou_sum[g["category_id"]] += inter / union
                    matched_gt.add(g["id"])
                    matched_pred.add(p["id"])
        for g in gt_segs:
            if not g["iscrowd"] and g["id"] not in matched_gt:
                fn[g["category_id"]] += 1
        for p in pred_segs:
            if p["id"] in matched_pred:
                continue
            p_mask = pred_ids == p["id"]
            crowd = np.zeros_like(void)
            for g in gt_segs:
                if g["iscrowd"] and g["category_id"] == p["category_id"]:
                    crowd |= gt_ids == g["id"]
            if np.sum(p_mask & (void | crowd)) / np.sum(p_mask) <= 0.5:
                fp[p["category_id"]] += 1
    out = {}
    for group, keep in (("All", lambda c: True), ("Things", lambda c: categories[c]["isthing"]),
                        ("Stuff", lambda c: not categories[c]["isthing"])):
        per = [(iou_sum[c] / (tp[c] + fp[c] / 2 + fn[c] / 2), iou_sum[c] / tp[c] if tp[c] else 0.0,
                tp[c] / (tp[c] + fp[c] / 2 + fn[c] / 2)) for c in categories if keep(c) and tp[c] + fp[c] + fn[c]]
        out[group] = tuple(float(np.mean([p[i] for p in per])) for i in range(3))
    return out


def random_pair(rng, size=24):
    """A ground truth of random blocks (things, stuff, void, at most one crowd per category) and a
    prediction made from it by moving, merging, dropping and relabelling segments."""
    gt = np.zeros((size, size), np.int64)
    segments = []
    for stuff in (3, 4):  # stuff: horizontal bands
        seg_id = len(segments) + 1
        lo = int(rng.integers(0, size // 2)) if stuff == 3 else int(rng.integers(size // 2, size))
        gt[(slice(0, lo) if stuff == 3 else slice(lo, size))] = seg_id
        segments.append({"id": seg_id, "category_id": stuff, "iscrowd": 0})
    crowd_done = set()
    for _ in range(int(rng.integers(2, 6))):
        cat = int(rng.integers(1, 3))
        y, x, h, w = (int(v) for v in rng.integers([0, 0, 3, 3], [size - 3, size - 3, 9, 9]))
        crowd = int(cat not in crowd_done and rng.random() < 0.3)
        crowd_done |= {cat} if crowd else set()
        seg_id = len(segments) + 1
        gt[y:y + h, x:x + w] = seg_id
        segments.append({"id": seg_id, "category_id": cat, "iscrowd": crowd})
    vy, vx = rng.integers(0, size - 4, 2)
    gt[vy:vy + int(rng.integers(1, 6)), vx:vx + int(rng.integers(1, 6))] = 0  # void
    segments = [dict(s, area=int((gt == s["id"]).sum())) for s in segments if (gt == s["id"]).any()]

    pred = np.roll(gt, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) * 10
    pred_segments = []
    for s in segments:
        pid = s["id"] * 10
        if not (pred == pid).any():
            continue
        r = rng.random()
        if r < 0.1:
            pred[pred == pid] = 0  # dropped: a miss, its pixels void in the prediction
            continue
        cat = s["category_id"] if r < 0.8 else int(rng.integers(1, 5))  # sometimes the wrong class
        pred_segments.append({"id": pid, "category_id": cat})
    if rng.random() < 0.5 and len(pred_segments) > 2:  # merge two segments
        a, b = pred_segments[-1], pred_segments[-2]
        pred[pred == a["id"]] = b["id"]
        pred_segments.pop()
    if rng.random() < 0.5:  # a spurious segment
        y, x = rng.integers(0, size - 4, 2)
        pred[y:y + 4, x:x + 4] = 999
        pred_segments = [s for s in pred_segments if (pred == s["id"]).any()]
        pred_segments.append({"id": 999, "category_id": int(rng.integers(1, 5))})
    return gt, segments, pred, pred_segments


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_generated_pairs(seed):
    rng = np.random.default_rng(seed)
    images = [random_pair(rng) for _ in range(12)]
    stats = None
    for image in images:
        stats = pq_stats(*image, stats)
    m = panoptic_metrics(stats, CATEGORIES)
    ref = reference_pq(images, CATEGORIES)
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for i, key in enumerate(("PQ", "SQ", "RQ")):
            assert m[key + suffix] / 100 == pytest.approx(ref[group][i], abs=1e-9), (group, key)
    assert any(s["iscrowd"] for image in images for s in image[1])  # the cases exercise crowd regions


def test_matches_the_coco_panoptic_api_when_installed(tmp_path):
    evaluation = pytest.importorskip("panopticapi.evaluation", reason="panopticapi is not installed")
    rng = np.random.default_rng(7)
    images = [random_pair(rng) for _ in range(10)]
    for sub in ("gt", "pred"):
        (tmp_path / sub).mkdir()
    gt_anns, pred_anns, image_entries = [], [], []
    for i, (gt, gt_segs, pred, pred_segs) in enumerate(images):
        Image.fromarray(id2rgb(gt)).save(tmp_path / "gt" / f"{i}.png")
        Image.fromarray(id2rgb(pred)).save(tmp_path / "pred" / f"{i}.png")
        image_entries.append({"id": i, "file_name": f"{i}.jpg", "height": 24, "width": 24})
        gt_anns.append({"image_id": i, "file_name": f"{i}.png", "segments_info": gt_segs})
        pred_anns.append({"image_id": i, "file_name": f"{i}.png", "segments_info": pred_segs})
    categories = [{"id": c, **info} for c, info in CATEGORIES.items()]
    (tmp_path / "gt.json").write_text(json.dumps({"images": image_entries, "annotations": gt_anns, "categories": categories}))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": pred_anns}))
    api = evaluation.pq_compute(str(tmp_path / "gt.json"), str(tmp_path / "pred.json"), str(tmp_path / "gt"),
                                str(tmp_path / "pred"))
    stats = None
    for image in images:
        stats = pq_stats(*image, stats)
    m = panoptic_metrics(stats, CATEGORIES)
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            assert m[key.upper() + suffix] / 100 == pytest.approx(api[group][key], abs=1e-6)


@pytest.fixture(scope="module")
def tiny_panoptic(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    records = shapes_panoptic_dataset(name="shapes_panoptic_evaltest", root=str(root), num_images=5, seed=4,
                                      image_size=96, min_size=12, max_size=36)
    yield records
    DatasetCatalog.remove("shapes_panoptic_evaltest")
    MetadataCatalog.remove("shapes_panoptic_evaltest")


def model_outputs(record, *, drop_first_thing=False):
    """The ground truth as a model would output it (contiguous ids, isthing flags, int32 ids)."""
    ids = torch.from_numpy(read_panoptic_png(record["pan_seg_file_name"]).astype(np.int32))
    segments = [{"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]}
                for s in record["segments_info"]]
    if drop_first_thing:
        first = next(s for s in segments if s["isthing"])
        ids[ids == first["id"]] = 0
        segments.remove(first)
    return {"panoptic_seg": (ids, segments)}


def test_evaluator_scores_the_ground_truth_100_and_a_miss_lower(tiny_panoptic, tmp_path):
    evaluator = COCOPanopticEvaluator("shapes_panoptic_evaltest", output_dir=str(tmp_path))
    evaluator.reset()
    for r in tiny_panoptic:
        evaluator.process([{"image_id": r["image_id"]}], [model_outputs(r)])
    m = evaluator.evaluate()["panoptic_seg"]
    assert m["PQ"] == m["SQ"] == m["RQ"] == m["PQ_th"] == m["PQ_st"] == 100
    assert json.loads((tmp_path / "predictions.json").read_text())["annotations"]
    evaluator.reset()
    for k, r in enumerate(tiny_panoptic):
        evaluator.process([{"image_id": r["image_id"]}], [model_outputs(r, drop_first_thing=k == 0)])
    m = evaluator.evaluate()["panoptic_seg"]
    assert m["PQ_st"] == 100 and 80 < m["PQ_th"] < 100 and m["SQ_th"] == 100


def test_evaluator_against_reference_on_perturbed_predictions(tiny_panoptic):
    meta = MetadataCatalog.get("shapes_panoptic_evaltest")
    gt_json = json.loads(open(meta.panoptic_json).read())
    categories = {c["id"]: c for c in gt_json["categories"]}
    gt_by_image = {a["image_id"]: a for a in gt_json["annotations"]}
    things = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    stuff = {v: k for k, v in meta.stuff_dataset_id_to_contiguous_id.items()}
    evaluator = COCOPanopticEvaluator("shapes_panoptic_evaltest")
    images = []
    for k, r in enumerate(tiny_panoptic):
        out = model_outputs(r)
        ids = torch.roll(out["panoptic_seg"][0], shifts=(k % 3, -(k % 2) * 4), dims=(0, 1))
        out = {"panoptic_seg": (ids, out["panoptic_seg"][1])}
        evaluator.process([{"image_id": r["image_id"]}], [out])
        gt = gt_by_image[r["image_id"]]
        pred_segs = [{"id": s["id"], "category_id": (things if s["isthing"] else stuff)[s["category_id"]]}
                     for s in out["panoptic_seg"][1]]
        images.append((read_panoptic_png(f"{meta.panoptic_root}/{gt['file_name']}"), gt["segments_info"],
                       ids.numpy().astype(np.int64), pred_segs))
    m = evaluator.evaluate()["panoptic_seg"]
    ref = reference_pq(images, categories)
    assert m["PQ"] / 100 == pytest.approx(ref["All"][0], abs=1e-9) and m["PQ"] < 100
    assert m["RQ_th"] / 100 == pytest.approx(ref["Things"][2], abs=1e-9)
