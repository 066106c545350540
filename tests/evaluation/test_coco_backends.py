"""faster-coco-eval against pycocotools on the same predictions, and how "auto" chooses."""
from __future__ import annotations

import math

import pytest
from evaltest_data import noisy_outputs

from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator, coco_backends


def evaluate(name: str, records: list[dict], outputs: dict, backend: str) -> dict:
    evaluator = COCOEvaluator(name, backend=backend)
    assert evaluator.backend == backend
    evaluator.process(records, [outputs[r["image_id"]] for r in records])
    return evaluator.evaluate()


@pytest.mark.parametrize("seed", [1, 2])
def test_faster_coco_eval_matches_pycocotools(coco_dataset, records, seed):
    pytest.importorskip("faster_coco_eval")
    outputs = noisy_outputs(records, seed=seed)
    reference = evaluate(coco_dataset, records, outputs, "pycocotools")
    faster = evaluate(coco_dataset, records, outputs, "faster_coco_eval")
    assert faster.keys() == reference.keys() == {"bbox", "segm", "keypoints"}
    for task, metrics in reference.items():
        assert faster[task].keys() == metrics.keys()
        for name, value in metrics.items():
            got = faster[task][name]
            assert (math.isnan(value) and math.isnan(got)) or abs(got - value) <= coco_backends.PARITY_TOLERANCE, \
                (task, name, got, value)


def test_builtin_parity_check_passes():
    pytest.importorskip("faster_coco_eval")
    from detrun.evaluation.backend_parity import backend_parity_gap

    assert backend_parity_gap() <= coco_backends.PARITY_TOLERANCE


def test_auto_backend_choice(monkeypatch, caplog):
    monkeypatch.setattr(coco_backends, "faster_coco_eval_installed", lambda: False)
    assert coco_backends.resolve_backend("auto") == "pycocotools"
    with pytest.raises(UserError, match="pip install"):
        coco_backends.resolve_backend("faster_coco_eval")

    monkeypatch.setattr(coco_backends, "faster_coco_eval_installed", lambda: True)
    coco_backends._faster_backend_agrees.cache_clear()
    monkeypatch.setattr("detrun.evaluation.backend_parity.backend_parity_gap", lambda: 0.5)
    assert coco_backends.resolve_backend("auto") == "pycocotools"  # drifted: fall back, and say so
    assert "differs from pycocotools" in caplog.text
    coco_backends._faster_backend_agrees.cache_clear()
    monkeypatch.setattr("detrun.evaluation.backend_parity.backend_parity_gap", lambda: 0.0)
    assert coco_backends.resolve_backend("auto") == "faster_coco_eval"
    coco_backends._faster_backend_agrees.cache_clear()
