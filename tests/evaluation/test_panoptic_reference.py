"""COCOPanopticEvaluator against torchmetrics' `PanopticQuality`, an independent implementation,
and hand-computed cases where the COCO panoptic API's conventions and torchmetrics' part.

torchmetrics takes per-pixel (category, instance) pairs; a category outside `things` / `stuffs`
is void. Its rules agree with the COCO API's (`pq_compute`) when

- every stuff category is at most one segment per image (torchmetrics merges a stuff category's
  pixels into one segment; COCO panoptic files have one per category anyway),
- the ground truth has no crowd regions (torchmetrics has none), and
- the prediction has no void pixels: torchmetrics leaves pixels the prediction left void out of
  a ground-truth segment's IoU and out of the false negatives; the COCO API counts them
  (`test_void_in_the_prediction_counts_as_coco_counts_it` shows the difference).

The generated pairs keep to that (torchmetrics' default ``allow_unknown_preds_category=False``
would reject a prediction with void or unknown categories) and exercise ground-truth void,
wrong classes, misses, spurious segments, several stuff classes, and IoUs of exactly, just above
and just below 0.5. Crowd regions and void in the prediction are checked by hand.
"""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.datasets.coco_panoptic import id2rgb
from detrun.evaluation import COCOPanopticEvaluator
from detrun.evaluation.panoptic_evaluation import pq_stats

THINGS = {1: "person", 3: "car", 7: "dog"}
STUFF = {5: "sky", 9: "road", 11: "grass"}
CATEGORIES = {c: {"id": c, "name": n, "isthing": int(c in THINGS)} for c, n in {**THINGS, **STUFF}.items()}
# Contiguous ids as PanopticFPN outputs them: things 0..T-1, stuff 1..S (0 is the "things" class).
THING_IDS = {c: i for i, c in enumerate(THINGS)}
STUFF_IDS = {c: i + 1 for i, c in enumerate(STUFF)}
SIZE = 40
DATASET = "panoptic_reference_test"


def random_scene(rng):
    """(gt ids, gt segments_info, pred ids, pred segments_info) of one SIZE x SIZE image.

    Ground truth: 1-3 vertical stuff bands, 2-6 thing boxes (later ones occlude earlier ones), 0-2
    void boxes. Prediction: the bands with moved borders (one sometimes of another stuff class);
    per box a miss, a small shift, or a horizontal shift by about a third of its width (a lone
    box of width w shifted by d has IoU (w - d) / (w + d): exactly 0.5 at d = w/3), sometimes of
    another thing class; boxes over some void regions, 1, w / (2w - 1), 1/2 or w / (2w + 2) of them
void.
    """
    gt = np.zeros((SIZE, SIZE), np.int64)
    pred = np.zeros_like(gt)
    gt_cats, pred_cats = {}, {}
    k = int(rng.integers(1, 4))
    order = [int(c) for c in rng.permutation(list(STUFF))]
    bands, pred_bands = order[:k], order[:k]
    if k < len(STUFF) and rng.random() < 0.3:
        pred_bands = [*order[:k - 1], order[k]]
    cuts = sorted(int(c) for c in rng.choice(np.arange(6, SIZE - 6), k - 1, replace=False))
    pred_cuts = sorted(int(np.clip(c + rng.integers(-8, 9), 1, SIZE - 1)) for c in cuts)
    for i, (lo, hi, plo, phi) in enumerate(zip([0, *cuts], [*cuts, SIZE], [0, *pred_cuts], [*pred_cuts, SIZE])):
        gt[:, lo:hi], gt_cats[1 + i] = 1 + i, bands[i]
        pred[:, plo:phi], pred_cats[101 + i] = 101 + i, pred_bands[i]
    for j in range(int(rng.integers(2, 7))):
        cat = int(rng.choice(list(THINGS)))
        h, w = int(rng.integers(4, 13)), 3 * int(rng.integers(2, 5))
        y, x = int(rng.integers(0, SIZE - h)), int(rng.integers(0, SIZE - w))
        gt[y:y + h, x:x + w], gt_cats[10 + j] = 10 + j, cat
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.6:
            dy, dx = 0, int(rng.choice([-1, 1])) * (w // 3 + int(rng.integers(-1, 2)))
        else:
            dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
        if rng.random() < 0.15:
            cat = int(rng.choice([c for c in THINGS if c != cat]))
        pred[max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w], pred_cats[110 + j] = 110 + j, cat
    for v in range(int(rng.integers(0, 3))):
        h, w = (int(s) for s in rng.integers(2, 9, 2))
        y, x = int(rng.integers(0, SIZE - h)), int(rng.integers(0, SIZE - w))
        gt[y:y + h, x:x + w] = 0
        if rng.random() < 0.7:  # void on all of it, on just over half (ignored), on half (a false positive)...
            pred[y:y + h, x:x + w + int(rng.choice([0, w - 1, w, w + 2]))] = 120 + v
            pred_cats[120 + v] = int(rng.choice(list(THINGS)))
    gt_segments = [{"id": i, "category_id": c, "iscrowd": 0, "area": int((gt == i).sum())}
                   for i, c in gt_cats.items() if (gt == i).any()]
    pred_segments = [{"id": i, "category_id": c} for i, c in pred_cats.items() if (pred == i).any()]
    return gt, gt_segments, pred, pred_segments


def torchmetrics_input(ids, segments):
    """int64 Tensor[1, H, W, 2] of (category, instance) per pixel; id 0 -> category 0 (void)."""
    categories = np.zeros(ids.max() + 1, np.int64)
    for s in segments:
        categories[s["id"]] = s["category_id"]
    return torch.from_numpy(np.stack([categories[ids], ids], axis=-1))[None]


def pair_ious(images):
    """IoU (void left out of the union) of every same-category ground-truth / predicted pair that
    overlaps: to show the generated pairs reach the 0.5 boundary."""
    ious = []
    for gt, gt_segs, pred, pred_segs in images:
        for g in gt_segs:
            for p in pred_segs:
                inter = np.sum((gt == g["id"]) & (pred == p["id"]))
                if inter and g["category_id"] == p["category_id"]:
                    union = np.sum((gt == g["id"]) | ((pred == p["id"]) & (gt != 0)))
                    ious.append(inter / union)
    return np.array(ious)


@pytest.fixture
def registered(tmp_path):
    """Registers DATASET over ground-truth files written by the returned function."""
    def write(images):
        (tmp_path / "gt").mkdir()
        annotations = []
        for i, (gt, gt_segments, _, _) in enumerate(images):
            Image.fromarray(id2rgb(gt)).save(tmp_path / "gt" / f"{i}.png")
            annotations.append({"image_id": i, "file_name": f"{i}.png", "segments_info": gt_segments})
        (tmp_path / "gt.json").write_text(json.dumps({"annotations": annotations,
                                                      "categories": list(CATEGORIES.values())}))
        DatasetCatalog.register(DATASET, list)
        MetadataCatalog.get(DATASET).set(panoptic_json=str(tmp_path / "gt.json"), panoptic_root=str(tmp_path / "gt"),
                                         thing_dataset_id_to_contiguous_id=THING_IDS,
                                         stuff_dataset_id_to_contiguous_id=STUFF_IDS)
    yield write
    if DATASET in DatasetCatalog:
        DatasetCatalog.remove(DATASET)
        MetadataCatalog.remove(DATASET)


def evaluate(images):
    """The evaluator's metrics for predictions given as PanopticFPN outputs (contiguous ids)."""
    evaluator = COCOPanopticEvaluator(DATASET, distributed=False)
    for i, (_, _, pred, pred_segments) in enumerate(images):
        segments = [{"id": s["id"], "isthing": s["category_id"] in THINGS,
                     "category_id": (THING_IDS if s["category_id"] in THINGS else STUFF_IDS)[s["category_id"]]}
                    for s in pred_segments]
        evaluator.process([{"image_id": i}], [{"panoptic_seg": (torch.from_numpy(pred).to(torch.int32), segments)}])
    return evaluator.evaluate()["panoptic_seg"]


@pytest.mark.parametrize("seed", range(3))
def test_evaluator_equals_torchmetrics_on_generated_pairs(seed, registered):
    detection = pytest.importorskip("torchmetrics.detection", reason="torchmetrics is not installed")
    rng = np.random.default_rng(seed)
    images = [random_scene(rng) for _ in range(16)]
    registered(images)
    ours = evaluate(images)

    metric, average = (detection.PanopticQuality(things=set(THINGS), stuffs=set(STUFF), return_sq_and_rq=True,
                                                 return_per_class=per_class) for per_class in (True, False))
    for gt, gt_segments, pred, pred_segments in images:
        for m in (metric, average):
            m.update(torchmetrics_input(pred, pred_segments), torchmetrics_input(gt, gt_segments))
    per_class = metric.compute().double()  # [C, 3]: things by id, then stuff by id
    order = sorted(THINGS) + sorted(STUFF)
    # Per category, the same counts (torchmetrics' states) as the COCO rules give.
    stats = None
    for image in images:
        stats = pq_stats(*image, stats)
    for index, cat in enumerate(order):
        s = stats[cat]
        counts = [int(getattr(metric, name)[index]) for name in ("true_positives", "false_positives", "false_negatives")]
        assert [s.tp, s.fp, s.fn] == counts, CATEGORIES[cat]["name"]
        assert s.iou == pytest.approx(float(metric.iou_sum[index]), rel=1e-6)  # its IoUs are float32
        assert ours[f"PQ-{CATEGORIES[cat]['name']}"] / 100 == pytest.approx(float(per_class[index, 0]), abs=1e-6)
    # "All": torchmetrics' own average, over the categories with segments; things / stuff: its
    # per-class rows averaged by that rule.
    present = (metric.true_positives + metric.false_positives + metric.false_negatives) > 0
    overall = average.compute().double()
    assert torch.allclose(overall, per_class[present].mean(dim=0))
    groups = {"": overall, "_th": per_class[present & torch.tensor([c in THINGS for c in order])].mean(dim=0),
              "_st": per_class[present & torch.tensor([c in STUFF for c in order])].mean(dim=0)}
    for suffix, expected in groups.items():
        for i, key in enumerate(("PQ", "SQ", "RQ")):
            assert ours[key + suffix] / 100 == pytest.approx(float(expected[i]), abs=1e-6), key + suffix
    assert 0 < ours["PQ_th"] < 100 and 0 < ours["PQ_st"] < 100
    ious = pair_ious(images)
    assert (ious == 0.5).any() and ((ious > 0.5) & (ious < 0.6)).any() and ((ious < 0.5) & (ious > 0.4)).any()
    assert any((gt == 0).any() for gt, *_ in images)  # ground-truth void


def paint(regions):
    """int64 [10, 10] ids, 0 where no (id, rows, cols) region of `regions` (later ones on top)."""
    ids = np.zeros((10, 10), np.int64)
    for segment_id, rows, cols in regions:
        ids[rows, cols] = segment_id
    return ids


def segments(categories, crowd=()):
    """segments_info from {id: category} (the ground truth's get their areas from `with_areas`)."""
    return [{"id": i, "category_id": c, "iscrowd": int(i in crowd)} for i, c in categories.items()]


def with_areas(ids, infos):
    return [dict(s, area=int((ids == s["id"]).sum())) for s in infos]


def test_crowd_regions_as_the_coco_api_treats_them(registered):
    s = slice
    # Image 0. Ground truth: a person (1) rows 0-3 cols 0-4; person crowds rows 0-3 cols 5-9 (2)
    # and rows 6-9 cols 0-4 (3, the person crowd listed last); a car crowd (4) rows 6-9 cols 5-9;
    # road (5) rows 4-5.
    gt0 = paint([(1, s(0, 4), s(0, 5)), (2, s(0, 4), s(5, 10)), (3, s(6, 10), s(0, 5)), (4, s(6, 10), s(5, 10)),
                 (5, s(4, 6), s(None))])
    gt0_info = with_areas(gt0, segments({1: 1, 2: 1, 3: 1, 4: 3, 5: 9}, crowd=(2, 3, 4)))
    # Prediction: person 11 rows 0-3 cols 0-5 (24 px: the person's 20 + 4 of crowd 2) -> IoU 20 /
    # (24 + 20 - 20) = 5/6, crowd pixels count in the union; person 12 = crowd 3 exactly: crowds
    # never match, and 20 of its 20 pixels on its category's crowd -> ignored (and no FN for the
    # crowd); person 13 rows 0-3 cols 6-9, all on crowd 2, which is not the last person crowd
    # listed -> FP (pq_compute keeps one crowd id per category); person 14 on the car crowd -> FP;
    # road 15 = road -> IoU 1.
    pred0 = paint([(11, s(0, 4), s(0, 6)), (13, s(0, 4), s(6, 10)), (15, s(4, 6), s(None)), (12, s(6, 10), s(0, 5)),
                   (14, s(6, 10), s(5, 10))])
    pred0_info = segments({11: 1, 12: 1, 13: 1, 14: 1, 15: 9})
    # Image 1. Ground truth: a car crowd (2) rows 0-4 cols 0-3, void rows 0-4 cols 4-5, road (1)
    # elsewhere (70 px). Prediction: car 21 rows 0-4 cols 2-7 (30 px: 10 on the crowd, 10 void,
    # 10 road) -> 20/30 > 1/2 ignored; car 22 cols 0-1 (20 px: 10 on the crowd, 10 road) -> exactly
    # 1/2, not more -> FP; road 23 the other 50 px, all on road -> IoU 50 / (50 + 70 - 50) = 5/7.
    gt1 = paint([(1, s(None), s(None)), (2, s(0, 5), s(0, 4)), (0, s(0, 5), s(4, 6))])
    gt1_info = with_areas(gt1, segments({1: 9, 2: 3}, crowd=(2,)))
    pred1 = paint([(23, s(None), s(None)), (21, s(0, 5), s(2, 8)), (22, s(None), s(0, 2))])
    pred1_info = segments({21: 3, 22: 3, 23: 9})
    images = [(gt0, gt0_info, pred0, pred0_info), (gt1, gt1_info, pred1, pred1_info)]
    registered(images)
    m = evaluate(images)
    # person: TP 1 (IoU 5/6), FP 2 -> PQ (5/6) / (1 + 2/2) = 5/12, SQ 5/6, RQ 1/2; car: FP 1 ->
    # 0, 0, 0; road: TP 2 (IoU 1 + 5/7) -> 6/7, 6/7, 1; dog, sky, grass: no segments, left out.
    person, car, road = (5 / 12, 5 / 6, 1 / 2), (0, 0, 0), (6 / 7, 6 / 7, 1)
    for i, key in enumerate(("PQ", "SQ", "RQ")):
        assert m[key] / 100 == pytest.approx((person[i] + car[i] + road[i]) / 3, abs=1e-12)
        assert m[key + "_th"] / 100 == pytest.approx((person[i] + car[i]) / 2, abs=1e-12)
        assert m[key + "_st"] / 100 == pytest.approx(road[i], abs=1e-12)
    assert m["PQ-person"] / 100 == pytest.approx(5 / 12) and m["PQ-car"] == 0 and m["PQ-dog"] == 0


def test_void_in_the_prediction_counts_as_coco_counts_it(registered):
    s = slice
    # Ground truth: a person (1) cols 0-5 (60 px), a car (3) rows 0-1 cols 6-9 (8 px), sky (2) rows
    # 2-9 cols 6-9 (32 px). Prediction: person 11 cols 0-2 (30 px), void cols 3-5 and where the car
    # is, sky 12 = sky.
    gt = paint([(1, s(None), s(0, 6)), (3, s(0, 2), s(6, 10)), (2, s(2, 10), s(6, 10))])
    gt_info = with_areas(gt, segments({1: 1, 2: 5, 3: 3}))
    pred = paint([(11, s(None), s(0, 3)), (12, s(2, 10), s(6, 10))])
    pred_info = segments({11: 1, 12: 5})
    images = [(gt, gt_info, pred, pred_info)]
    registered(images)
    m = evaluate(images)
    # COCO: the person's IoU is 30 / (30 + 60 - 30) = 1/2, not more -> FN person and FP person
    # (PQ 0); the car is a FN (PQ 0); sky IoU 1. PQ = SQ = RQ = (0 + 0 + 1) / 3.
    assert (m["PQ"], m["SQ"], m["RQ"]) == (pytest.approx(100 / 3),) * 3
    assert (m["PQ_th"], m["RQ_th"], m["PQ_st"]) == (0, 0, 100)
    detection = pytest.importorskip("torchmetrics.detection", reason="torchmetrics is not installed")
    # torchmetrics leaves the prediction's void out: the person's union is 30 + 60 - 30 (void in
    # the prediction) - 30 = 30 -> IoU 1; the car, all void in the prediction, is no FN -> PQ 1.
    metric = detection.PanopticQuality(things=set(THINGS), stuffs=set(STUFF), allow_unknown_preds_category=True)
    metric.update(torchmetrics_input(pred, pred_info), torchmetrics_input(gt, gt_info))
    assert float(metric.compute()) == pytest.approx(1.0)
