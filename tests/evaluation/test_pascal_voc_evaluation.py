"""PascalVOCDetectionEvaluator: hand-computed AP on a fixture with difficult objects and duplicates,
and random cases against a plain loop written the way the devkit's VOCevaldet.m reads."""
import math

import numpy as np
import pytest
import torch

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.errors import UserError
from detrun.evaluation.pascal_voc_evaluation import PascalVOCDetectionEvaluator
from detrun.structures import BoxMode, Boxes, Instances

CLASSES = ["cat", "dog", "bird"]
SIZE = (64, 64)


def gt(box, cls, difficult=0):
    return {"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": CLASSES.index(cls), "difficult": difficult,
            "iscrowd": 0}


# Ground truth: cat g1, g3 (and g4 in image b) count; cat g2 is difficult; dog's only box is difficult.
RECORDS = [
    {"image_id": "a", "annotations": [gt([0, 0, 10, 10], "cat"), gt([20, 0, 30, 10], "cat", difficult=1),
                                      gt([40, 0, 50, 10], "cat")]},
    {"image_id": "b", "annotations": [gt([0, 0, 10, 10], "cat"), gt([30, 30, 40, 40], "dog", difficult=1),
                                      gt([0, 20, 10, 30], "bird")]},
    {"image_id": "c", "annotations": []},
]
# Detections: image → [(box, class, score)].
DETECTIONS = {
    "a": [([0, 0, 10, 10], "cat", 0.9),  # d1: IoU 1 with g1: true positive
          ([0, 0, 10, 10], "cat", 0.8),  # d2: g1 again: a duplicate, false positive
          ([20, 0, 30, 10], "cat", 0.7),  # d3: the difficult g2: ignored
          ([40, 0, 50, 6], "cat", 0.4)],  # d6: IoU 60/100 = 0.6 with g3: TP for IoU thresholds below 0.6
    "b": [([50, 50, 60, 60], "cat", 0.6),  # d4: overlaps nothing: FP
          ([0, 0, 10, 9], "cat", 0.5),  # d5: IoU 90/100 = 0.9 with g4: TP below 0.9
          ([30, 30, 40, 40], "dog", 0.9)],  # on dog's difficult box: ignored; dog has no box to recall: NaN
    "c": [([5, 5, 15, 15], "cat", 0.1)],  # an image without cats: FP, after the last TP (changes no AP)
}


def outputs_of(detections):
    boxes = torch.tensor([d[0] for d in detections], dtype=torch.float32).reshape(-1, 4)
    return {"instances": Instances(SIZE, pred_boxes=Boxes(boxes), scores=torch.tensor([d[2] for d in detections]),
                                   pred_classes=torch.tensor([CLASSES.index(d[1]) for d in detections]).long())}


@pytest.fixture
def voc_fixture(request):
    name = f"test_voc_eval_{request.node.name}"
    DatasetCatalog.register(name, lambda: [dict(r, file_name=f"{r['image_id']}.jpg", height=64, width=64)
                                           for r in RECORDS], overwrite=True)
    MetadataCatalog.get(name).set(thing_classes=CLASSES, year=2007)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def evaluate(name, **kwargs):
    evaluator = PascalVOCDetectionEvaluator(name, distributed=False, **kwargs)
    for image_id, dets in DETECTIONS.items():
        evaluator.process([{"image_id": image_id}], [outputs_of(dets)])
    return evaluator.evaluate()["bbox"]


def test_hand_computed_11_point_and_area_ap(voc_fixture, tmp_path):
    # cat, 3 boxes to recall (g1, g3, g4). In score order without the ignored d3: d1 d2 d4 d5 d6 (then c's FP).
    # IoU 0.5 and 0.55: T F F T T -> recall 1/3 1/3 1/3 2/3 1, precision 1 1/2 1/3 2/4 3/5.
    #   11-point: r = 0..0.3 -> 1 (4 points); r = 0.4..1.0 -> best precision at recall >= r is 3/5 (7 points).
    cat_11_at_50 = (4 * 1 + 7 * 3 / 5) / 11
    #   area: precision envelope 1 up to recall 1/3, then 3/5 up to 1.
    cat_area_at_50 = 1 / 3 * 1 + 2 / 3 * 3 / 5
    # IoU 0.6 .. 0.85 (6 thresholds; IoU must be strictly above): d6 is FP: T F F T F,
    #   recall 1/3 1/3 1/3 2/3 2/3, precision 1 1/2 1/3 1/2 2/5: 11-point (4 * 1 + 3 * 1/2) / 11 = 0.5,
    #   area 1/3 * 1 + 1/3 * 1/2 = 0.5.
    # IoU 0.9, 0.95: only d1 is TP: 11-point 4/11, area 1/3.
    cat_11 = [cat_11_at_50] * 2 + [0.5] * 6 + [4 / 11] * 2
    cat_area = [cat_area_at_50] * 2 + [0.5] * 6 + [1 / 3] * 2
    # bird: one box, never detected: AP 0. dog: no box to recall: NaN, left out of the means.
    m = evaluate(voc_fixture, output_dir=str(tmp_path))  # year 2007: 11-point
    assert m["AP50_11pt-cat"] == pytest.approx(100 * cat_11_at_50) and m["AP50_area-cat"] == pytest.approx(100 * cat_area_at_50)
    assert round(cat_11_at_50, 4) == 0.7455 and round(cat_area_at_50, 4) == 0.7333  # the two metrics differ here
    assert m["AP50_11pt-bird"] == 0 and math.isnan(m["AP50_11pt-dog"]) and math.isnan(m["AP-dog"])
    assert m["AP50"] == pytest.approx(100 * (cat_11_at_50 + 0) / 2)
    assert m["AP75"] == pytest.approx(100 * (0.5 + 0) / 2)
    assert m["AP"] == pytest.approx(100 * np.mean(cat_11) / 2) and m["AP-cat"] == pytest.approx(100 * np.mean(cat_11))
    assert m["AP50_area"] == pytest.approx(100 * cat_area_at_50 / 2)
    assert "cat" in (tmp_path / "per_category_ap.txt").read_text()
    m = evaluate(voc_fixture, use_07_metric=False)
    assert m["AP50"] == pytest.approx(100 * cat_area_at_50 / 2) and m["AP"] == pytest.approx(100 * np.mean(cat_area) / 2)
    assert m["AP50_11pt"] == pytest.approx(100 * cat_11_at_50 / 2)


def test_metric_follows_the_year_and_errors_name_the_problem(voc_fixture):
    assert PascalVOCDetectionEvaluator(voc_fixture).use_07_metric
    MetadataCatalog.get(voc_fixture).clear()
    MetadataCatalog.get(voc_fixture).set(thing_classes=CLASSES, year=2012)
    assert not PascalVOCDetectionEvaluator(voc_fixture).use_07_metric
    with pytest.raises(UserError, match="not a registered data set"):
        PascalVOCDetectionEvaluator("no_such_voc_set")
    evaluator = PascalVOCDetectionEvaluator(voc_fixture, distributed=False)
    with pytest.raises(UserError, match="num_classes"):
        evaluator.process([{"image_id": "a"}], [{"instances": Instances(
            SIZE, pred_boxes=Boxes(torch.zeros(1, 4)), scores=torch.ones(1), pred_classes=torch.tensor([7]))}])
    evaluator.process([{"image_id": "zzz"}], [outputs_of([])])
    with pytest.raises(UserError, match="not images of data set"):
        evaluator.evaluate()


def devkit_loop(detections, gts, threshold, use_07_metric):
    """VOCevaldet.m as written: boxes back to 1-based inclusive pixels, areas with +1, a loop over
    detections by decreasing confidence. detections: [(image, score, box)]; gts: image → [(box, difficult)]."""
    def inclusive(b):
        return [b[0] + 1, b[1] + 1, b[2], b[3]]
    npos = sum(not d for boxes in gts.values() for _, d in boxes)
    detected = {i: [False] * len(boxes) for i, boxes in gts.items()}
    tp, fp = [], []
    for image, _, box in sorted(detections, key=lambda d: -d[1]):
        bb = inclusive(box)
        ovmax, jmax = -math.inf, -1
        for j, (g, _) in enumerate(gts.get(image, [])):
            gg = inclusive(g)
            iw = min(bb[2], gg[2]) - max(bb[0], gg[0]) + 1
            ih = min(bb[3], gg[3]) - max(bb[1], gg[1]) + 1
            if iw > 0 and ih > 0:
                ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (gg[2] - gg[0] + 1) * (gg[3] - gg[1] + 1) - iw * ih
                if iw * ih / ua > ovmax:
                    ovmax, jmax = iw * ih / ua, j
        if ovmax > threshold:
            if gts[image][jmax][1]:
                continue  # difficult: neither TP nor FP
            if not detected[image][jmax]:
                detected[image][jmax] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        else:
            tp.append(0), fp.append(1)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, 1e-300)
    if use_07_metric:
        return sum(max([p for r, p in zip(rec, prec) if r >= t], default=0) for t in np.arange(0, 1.1, 0.1)) / 11
    mrec, mpre = [0, *rec, 1], [0, *prec, 0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match_the_devkit_loop(voc_fixture, seed):
    rng = np.random.default_rng(seed)
    images = 5
    gts = {}  # image → [(box, difficult, class)]
    for i in range(images - 1):  # the last image has no boxes
        corners = rng.integers(0, 40, (rng.integers(0, 6), 2))
        sizes = rng.integers(6, 30, corners.shape)
        gts[i] = [([float(x), float(y), float(x + w), float(y + h)], bool(rng.random() < 0.25), int(rng.integers(2)))
                  for (x, y), (w, h) in zip(corners, sizes)]
    detections = []  # (image, score, box, class)
    for i in range(images):
        for g, _, c in gts.get(i, []):  # jittered copies (duplicates among them, some of the other class)
            for _ in range(rng.integers(0, 3)):
                box = [float(v) for v in np.add(g, rng.integers(-3, 4, 4))]
                detections.append((i, rng.random(), box, c if rng.random() < 0.8 else 1 - c))
        for _ in range(rng.integers(0, 3)):  # and boxes anywhere
            x, y = rng.integers(0, 40, 2)
            detections.append((i, rng.random(), [float(x), float(y), float(x + 10), float(y + 8)], int(rng.integers(2))))
    records = [{"image_id": i, "annotations": [{"bbox": g, "bbox_mode": BoxMode.XYXY_ABS, "category_id": c,
                                                "difficult": int(d)} for g, d, c in gts.get(i, [])]}
               for i in range(images)]
    predictions = {i: (np.array([d[2] for d in detections if d[0] == i]).reshape(-1, 4),
                       np.array([d[1] for d in detections if d[0] == i]),
                       np.array([d[3] for d in detections if d[0] == i], dtype=np.int64)) for i in range(images)}
    evaluator = PascalVOCDetectionEvaluator(voc_fixture, distributed=False)  # year 2007: "AP" is 11-point
    m = evaluator.score(predictions, records)
    for c, name in enumerate(CLASSES[:2]):
        dets = [(i, score, box) for i, score, box, k in detections if k == c]
        boxes = {i: [(g, d) for g, d, k in gts.get(i, []) if k == c] for i in range(images)}
        if all(d for b in boxes.values() for _, d in b):  # no box to recall
            assert math.isnan(m[f"AP50_area-{name}"]) and math.isnan(m[f"AP-{name}"])
            continue
        assert m[f"AP50_11pt-{name}"] == pytest.approx(100 * devkit_loop(dets, boxes, 0.5, True), abs=1e-9)
        assert m[f"AP50_area-{name}"] == pytest.approx(100 * devkit_loop(dets, boxes, 0.5, False), abs=1e-9)
        every_threshold = [devkit_loop(dets, boxes, t, True) for t in np.arange(0.5, 0.96, 0.05)]
        assert m[f"AP-{name}"] == pytest.approx(100 * np.mean(every_threshold), abs=1e-9)
