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
from detrun.evaluation.panoptic_evaluation import panoptic_metrics, pq_stats

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


def lone_ious(images):
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
    # Averages over the categories with segments (torchmetrics' own "All" average, and the things /
    # stuff rows of its per-class output over the same rule).
    present = (metric.true_positives + metric.false_positives + metric.false_negatives) > 0
    assert torch.allclose(average.compute().double(), per_class[present].mean(dim=0))
    groups = {"": torch.ones(len(order), dtype=torch.bool),
              "_th": torch.tensor([c in THINGS for c in order]), "_st": torch.tensor([c in STUFF for c in order])}
    for suffix, members in groups.items():
        expected = per_class[present & members].mean(dim=0)
        for i, key in enumerate(("PQ", "SQ", "RQ")):
            assert ours[key + suffix] / 100 == pytest.approx(float(expected[i]), abs=1e-6), key + suffix
    assert 0 < ours["PQ_th"] < 100 and 0 < ours["PQ_st"] < 100
    ious = lone_ious(images)
    assert (ious == 0.5).any() and ((ious > 0.5) & (ious < 0.6)).any() and ((ious < 0.5) & (ious > 0.4)).any()
    assert any((gt == 0).any() for gt, *_ in images)  # ground-truth void
