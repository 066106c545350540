import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.data.datasets.cityscapes import register_cityscapes
from detrun.errors import UserError
from detrun.evaluation.cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator, numpy_compat
from detrun.structures import Boxes, Instances

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from cityscapes_files import write_cityscapes  # noqa: E402  (the loader tests' fixture writer)

THINGS = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
THING_IDS = [24, 25, 26, 27, 28, 31, 32, 33]  # their label ids in the public table


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes_eval")
    write_cityscapes(root, seed=3)
    names = {}
    for task in ("instance_seg", "sem_seg"):
        names[task] = f"test_cs_eval_{task}"
        register_cityscapes(names[task], task=task, image_dir=root / "leftImg8bit/val", gt_dir=root / "gtFine/val",
                            overwrite=True)
    records = {task: DatasetCatalog.get(name) for task, name in names.items()}
    yield names, records
    for name in names.values():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.fixture
def official(tmp_path, monkeypatch):
    """cityscapesscripts' evaluation modules, with its files kept under tmp_path."""
    pytest.importorskip("cityscapesscripts")
    monkeypatch.setenv("CITYSCAPES_DATASET", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the instance evaluation writes matches.json into the working folder
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as instance
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as pixel
    return pixel, instance


def _semantic_predictions(records, seed=0):
    """Train-id predictions: ground truth with 30 % of pixels replaced by random classes."""
    rng = np.random.default_rng(seed)
    preds = []
    for r in records:
        gt = np.asarray(Image.open(r["sem_seg_file_name"])).astype(np.int64)
        pred = np.where(gt == 255, rng.integers(0, 19, gt.shape), gt)
        noise = rng.random(gt.shape) < 0.3
        preds.append(np.where(noise, rng.integers(0, 19, gt.shape), pred))
    return preds


def _run(evaluator, records, outputs):
    evaluator.reset()
    for r, out in zip(records, outputs):
        evaluator.process([{"image_id": r["image_id"]}], [out])
    return evaluator.evaluate()


def _sem_seg_outputs(preds):
    return [{"sem_seg": torch.nn.functional.one_hot(torch.from_numpy(p), 19).permute(2, 0, 1).float()} for p in preds]


def test_python_miou_equals_hand_computed_ious(city, monkeypatch):
    monkeypatch.setitem(sys.modules, "cityscapesscripts.evaluation", None)  # as if not installed: "auto" falls back
    names, records = city
    preds = _semantic_predictions(records["sem_seg"])
    evaluator = CityscapesSemSegEvaluator(names["sem_seg"], distributed=False)
    assert evaluator.backend == "python"
    metrics = _run(evaluator, records["sem_seg"], _sem_seg_outputs(preds))["sem_seg"]
    gt = np.stack([np.asarray(Image.open(r["sem_seg_file_name"])) for r in records["sem_seg"]]).astype(np.int64)
    pred = np.stack(preds)
    ious = []
    for c in range(19):  # Cityscapes: false positives only on labelled pixels; absent-but-predicted scores 0
        tp = np.sum((pred == c) & (gt == c))
        fp = np.sum((pred == c) & (gt != c) & (gt != 255))
        fn = np.sum((pred != c) & (gt == c))
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    assert any(iou == 0 for iou in ious)  # classes predicted but absent from the ground truth
    assert metrics["mIoU"] == pytest.approx(100 * np.nanmean(ious), rel=1e-12)
    assert metrics["IoU-car"] == pytest.approx(100 * ious[13], rel=1e-12)
    with pytest.raises(UserError, match=r"pip install 'detrun\[cityscapes\]'"):
        CityscapesSemSegEvaluator(names["sem_seg"], backend="cityscapesscripts")


def test_sem_seg_evaluator_agrees_with_cityscapesscripts(city, official, tmp_path):
    pixel, _ = official
    names, records = city
    preds = _semantic_predictions(records["sem_seg"], seed=1)
    ours = _run(CityscapesSemSegEvaluator(names["sem_seg"], distributed=False), records["sem_seg"],
                _sem_seg_outputs(preds))["sem_seg"]
    fallback = _run(CityscapesSemSegEvaluator(names["sem_seg"], backend="python", distributed=False),
                    records["sem_seg"], _sem_seg_outputs(preds))["sem_seg"]
    # the reference: prediction PNGs in label ids (the package's own trainId -> id table), its own evaluation
    from cityscapesscripts.helpers.labels import trainId2label
    pred_dir = tmp_path / "results"
    pred_dir.mkdir()
    pred_files = []
    for r, p in zip(records["sem_seg"], preds):
        pred_files.append(str(pred_dir / Path(r["label_ids_file"]).name.replace("labelIds", "pred")))
        lut = np.array([trainId2label[t].id for t in range(19)], dtype=np.uint8)
        Image.fromarray(lut[p]).save(pred_files[-1])
    pixel.args.quiet, pixel.args.JSONOutput = True, False
    with numpy_compat(pixel):  # the package calls np.in1d, gone from NumPy 2.4
        ref = pixel.evaluateImgLists(pred_files, [r["label_ids_file"] for r in records["sem_seg"]], pixel.args)
    assert ours["mIoU"] == pytest.approx(100 * ref["averageScoreClasses"], rel=1e-12)
    assert ours["iIoU"] == pytest.approx(100 * ref["averageScoreInstClasses"], rel=1e-12)
    assert ours["IoU_sup"] == pytest.approx(100 * ref["averageScoreCategories"], rel=1e-12)
    assert fallback["mIoU"] == pytest.approx(ours["mIoU"], rel=1e-12)
    assert math.isnan(_run(CityscapesSemSegEvaluator(names["sem_seg"], distributed=False), [], [])["sem_seg"]["mIoU"])
    for name in ("road", "car", "person", "truck"):
        assert fallback[f"IoU-{name}"] == pytest.approx(ours[f"IoU-{name}"], rel=1e-12, nan_ok=True)


def _instance_predictions(records, seed=0):
    """Per image: every evaluated ground-truth instance (some exact, some shifted by a few pixels)
    plus random false positives, random scores; as (label id, score, bool mask) lists."""
    rng = np.random.default_rng(seed)
    images = []
    for r in records:
        ids = np.asarray(Image.open(r["instance_ids_file"])).astype(np.int64)
        dets = []
        for inst in np.unique(ids[ids >= 1000]):
            mask = ids == inst
            if inst // 1000 in THING_IDS and rng.random() < 0.85:
                if rng.random() < 0.4:
                    mask = np.roll(mask, int(rng.integers(2, 6)), axis=int(rng.integers(0, 2)))
                dets.append((int(inst // 1000), float(rng.random()), mask))
        for _ in range(int(rng.integers(0, 3))):
            mask = np.zeros_like(ids, dtype=bool)
            y, x = int(rng.integers(0, 40)), int(rng.integers(0, 100))
            mask[y:y + 15, x:x + 20] = True
            dets.append((int(rng.choice([24, 26, 27])), float(rng.random()), mask))
        images.append(dets)
    return images


def _instances(dets) -> dict:
    inst = Instances((64, 128))
    masks = torch.from_numpy(np.stack([m for _, _, m in dets])) if dets else torch.zeros(0, 64, 128, dtype=torch.bool)
    inst.pred_masks = masks
    inst.pred_boxes = Boxes(torch.zeros(len(dets), 4))
    inst.scores = torch.tensor([s for _, s, _ in dets], dtype=torch.float32)
    inst.pred_classes = torch.tensor([THING_IDS.index(c) for c, _, _ in dets], dtype=torch.int64)
    return {"instances": inst}


def _official_instance_ap(instance, records, images, folder: Path) -> dict:
    folder.mkdir()
    pred_files = []
    for r, dets in zip(records, images):
        core = Path(r["instance_ids_file"]).name.split("_gtFine")[0]
        lines = []
        for k, (label_id, score, mask) in enumerate(dets):
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{core}_{k}.png")
            lines.append(f"{core}_{k}.png {label_id} {np.float32(score):.6f}\n")
        pred_files.append(str(folder / f"{core}_pred.txt"))
        Path(pred_files[-1]).write_text("".join(lines))
    instance.args.predictionPath, instance.args.quiet, instance.args.JSONOutput = str(folder), True, False
    instance.args.gtInstancesFile = str(folder / "gt.json")
    with numpy_compat(instance):  # and its JSON writer fails on NumPy integers
        return instance.evaluateImgLists(pred_files, [r["instance_ids_file"] for r in records], instance.args)["averages"]


def test_instance_evaluator_agrees_with_cityscapesscripts(city, official, tmp_path):
    _, instance = official
    names, records = city
    images = _instance_predictions(records["instance_seg"])
    ours = _run(CityscapesInstanceEvaluator(names["instance_seg"], distributed=False), records["instance_seg"],
                [_instances(d) for d in images])["segm"]
    ref = _official_instance_ap(instance, records["instance_seg"], images, tmp_path / "ref")
    assert 0 < ours["AP"] < 100
    assert ours["AP"] == pytest.approx(100 * ref["allAp"], rel=1e-9)
    assert ours["AP50"] == pytest.approx(100 * ref["allAp50%"], rel=1e-9)
    for name in THINGS:
        assert ours[f"AP-{name}"] == pytest.approx(100 * ref["classes"][name]["ap"], rel=1e-9, nan_ok=True)


def test_instance_evaluator_perfect_predictions_and_errors(city, official, monkeypatch):
    names, records = city
    exact = []
    for r in records["instance_seg"]:
        ids = np.asarray(Image.open(r["instance_ids_file"])).astype(np.int64)
        exact.append([(int(i // 1000), 1.0, ids == i) for i in np.unique(ids[ids >= 1000]) if i // 1000 in THING_IDS])
    evaluator = CityscapesInstanceEvaluator(names["instance_seg"], distributed=False)
    metrics = _run(evaluator, records["instance_seg"], [_instances(d) for d in exact])["segm"]
    assert metrics["AP"] == pytest.approx(100) and metrics["AP50"] == pytest.approx(100)
    assert math.isnan(metrics["AP-train"])  # no train in the ground truth, none predicted
    evaluator.reset()
    assert all(math.isnan(v) for v in evaluator.evaluate()["segm"].values())  # nothing processed
    boxes_only = _instances(exact[0])["instances"]
    boxes_only.remove("pred_masks")
    with pytest.raises(UserError, match="no pred_masks"):
        evaluator.process([{"image_id": 0}], [{"instances": boxes_only}])
    with pytest.raises(UserError, match="not a registered data set"):
        CityscapesInstanceEvaluator("no_such_cityscapes")
    monkeypatch.setitem(sys.modules, "cityscapesscripts.evaluation", None)
    with pytest.raises(UserError, match=r"pip install 'detrun\[cityscapes\]'"):
        CityscapesInstanceEvaluator(names["instance_seg"])
