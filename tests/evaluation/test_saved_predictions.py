"""task=eval predictions=PATH: scoring a saved predictions file reproduces the run's results."""
from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from detrun.config import L
from detrun.data import MetadataCatalog
from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator
from detrun.evaluation.tasks import run_eval
from evaltest_data import noisy_outputs


@pytest.fixture(params=["coco_dataset", "list_dataset"])
def scored_run(request, records, tmp_path):
    """A run's evaluation of jittered, missed, misclassified and spurious detections (boxes, masks,
    keypoints; non-contiguous category ids): its results and saved COCO results JSON."""
    name = request.getfixturevalue(request.param)
    evaluator = COCOEvaluator(name, output_dir=str(tmp_path / "run" / "inference"), backend="pycocotools")
    outputs = noisy_outputs(records, seed=3)
    for record in records:
        evaluator.process([{"image_id": record["image_id"]}], [outputs[record["image_id"]]])
    return name, evaluator.evaluate(), tmp_path / "run" / "inference" / "coco_instances_results.json"


def eval_predictions(name: str, path, run_dir) -> dict:
    cfg = OmegaConf.create({"task": "eval", "predictions": str(path),
                            "evaluator": L(COCOEvaluator)(dataset_name=name, backend="pycocotools")})
    run_eval(cfg, run_dir)
    return json.loads((run_dir / "results.json").read_text())


def assert_same_metrics(results: dict, expected: dict) -> None:
    assert results.keys() == expected.keys()
    for task, metrics in expected.items():
        assert results[task] == pytest.approx(metrics, abs=1e-9), task


def test_saved_coco_results_reproduce_the_runs_results(scored_run, tmp_path):
    name, expected, saved = scored_run
    assert set(expected) == {"bbox", "segm", "keypoints"}
    assert 10 < expected["bbox"]["AP"] < 95  # the noise costs AP, nothing is trivially 0 or 100
    assert_same_metrics(eval_predictions(name, saved, tmp_path), expected)


def test_predict_style_predictions_json_scores_the_same(scored_run, records, tmp_path):
    """task=predict's predictions.json names images by file and classes by contiguous index."""
    name, expected, saved = scored_run
    files = {r["image_id"]: r["file_name"] for r in records}
    contiguous = MetadataCatalog.get(name).get("thing_dataset_id_to_contiguous_id") or {}
    detections = json.loads(saved.read_text())
    for det in detections:
        det["file_name"] = files[det.pop("image_id")]
        det["category_id"] = contiguous.get(det["category_id"], det["category_id"])
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(detections))
    assert_same_metrics(eval_predictions(name, path, tmp_path), expected)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ('{"image_id": 10}', "JSON list of detections"),
    ('[{"image_id": 10, "bbox": [0, 0, 1, 1], "score": 0.5}]', "detection 0 lacks category_id"),
    ('[{"image_id": 987654, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}]', "987654"),
    ('[{"file_name": "elsewhere/nope.png", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "nope.png"),
    ('[{"image_id": 10, "category_id": 99, "bbox": [0, 0, 1, 1], "score": 0.5}]', "99"),
])
def test_bad_predictions_files_are_named(coco_dataset, tmp_path, content, message):
    path = tmp_path / "predictions.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        eval_predictions(coco_dataset, path, tmp_path)
    assert "predictions=" in str(error.value)
