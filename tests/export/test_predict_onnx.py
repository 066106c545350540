"""``task=export format=onnx`` then ``task=predict model.weights=model.onnx`` (the Predictor's
onnxruntime backend) against eager ``task=predict`` on a folder of shapes images: the same
predictions.json (same classes, boxes within 1e-3 relative, masks with IoU >= 0.99 by pycocotools).
The task's torch.export program of Mask R-CNN is checked against eager here too (test_export.py's
check, without a second export)."""
from __future__ import annotations

import json
from collections import defaultdict

import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util

from detrun.config import compose
from detrun.errors import UserError
from detrun.evaluation import Predictor
from detrun.evaluation.tasks import run_predict
from detrun.export.task import run_export

from export_testing import ARCHITECTURES, build, check_program, shapes_image

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

# Not multiples of 32 (padded), one taller than wide.
SIZES = [(128, 160), (100, 212), (170, 120)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Seeded random shapes Mask R-CNN weights, their ONNX file and a folder of shapes images."""
    root = tmp_path_factory.mktemp("predict_onnx")
    model = build("mask_rcnn")
    torch.save(model.state_dict(), root / "weights.pth")
    images = root / "images"
    images.mkdir()
    for seed, (h, w) in enumerate(SIZES):
        Image.fromarray(shapes_image(h, w, seed + 20).permute(1, 2, 0).numpy()).save(images / f"img{seed}.png")
    recipe, overrides = ARCHITECTURES["mask_rcnn"]
    program = run_export(compose(recipe, [*overrides, "task=export", "format=onnx",
                                          f"model.weights={root / 'weights.pth'}", f"output={root / 'model.onnx'}"]), root)
    check_program(model, program)  # the program the file was converted from equals eager
    return root


def predict(root, weights, name) -> list[dict]:
    recipe, overrides = ARCHITECTURES["mask_rcnn"]
    cfg = compose(recipe, [*overrides, "task=predict", f"input={root / 'images'}", f"output={root / name}",
                           f"model.weights={weights}"])
    run_predict(cfg, root)
    return json.loads((root / name / "predictions.json").read_text())


def by_image(predictions: list[dict]) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for p in predictions:
        grouped[p["file_name"]].append(p)
    return grouped


def xyxy(p: dict) -> list[float]:
    x, y, w, h = p["bbox"]
    return [x, y, x + w, y + h]


def test_export_then_predict_gives_eager_predictions(exported):
    eager = by_image(predict(exported, exported / "weights.pth", "eager"))
    onnx = by_image(predict(exported, exported / "model.onnx", "onnx"))
    assert sorted(eager) == sorted(onnx) and len(eager) == len(SIZES)
    for name, expected in eager.items():
        actual = onnx[name]
        assert len(expected) > 0, "the test needs detections"
        assert [p["category_id"] for p in actual] == [p["category_id"] for p in expected], name
        assert [p["category_name"] for p in actual] == [p["category_name"] for p in expected]
        torch.testing.assert_close(torch.tensor([xyxy(p) for p in actual]), torch.tensor([xyxy(p) for p in expected]),
                                   rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(torch.tensor([p["score"] for p in actual]),
                                   torch.tensor([p["score"] for p in expected]), rtol=1e-3, atol=1e-4)
        for a, b in zip(actual, expected):
            assert a["segmentation"]["size"] == b["segmentation"]["size"]
            rle_a, rle_b = ({**r["segmentation"], "counts": r["segmentation"]["counts"].encode()} for r in (a, b))
            if mask_util.area(rle_a) == mask_util.area(rle_b) == 0:
                continue
            assert mask_util.iou([rle_a], [rle_b], [0])[0, 0] >= 0.99, (name, a["score"])
    # The pictures are drawn from the same predictions: one per image for both backends.
    assert sorted(p.name for p in (exported / "onnx").glob("*.png")) == [f"img{i}.png" for i in range(len(SIZES))]


def test_onnx_predictor_outputs_at_the_original_size(exported):
    recipe, overrides = ARCHITECTURES["mask_rcnn"]
    predictor = Predictor(compose(recipe, overrides), weights=exported / "model.onnx")
    assert predictor.onnx is not None and predictor.onnx.metadata["input_format"] == "RGB"
    instances = predictor(exported / "images" / "img1.png")["instances"]
    assert instances.image_size == SIZES[1] and instances.pred_masks.shape[1:] == SIZES[1]
    assert instances.pred_masks.dtype == torch.bool and len(instances) > 0


def test_onnx_file_of_another_recipe_is_refused(exported):
    # A BGR recipe would read the images in the other channel order than the file was exported for.
    recipe, overrides = ARCHITECTURES["mask_rcnn"]
    cfg = compose(recipe, [*overrides, "model.input_format=BGR", f"model.weights={exported / 'model.onnx'}"])
    with pytest.raises(UserError, match=r"input_format 'RGB' \(the recipe's model has 'BGR'\)"):
        Predictor(cfg)
    with pytest.raises(UserError, match="num_classes '3'"):
        Predictor(compose(recipe, [*overrides, "model.roi_heads.num_classes=5"]), weights=exported / "model.onnx")
    with pytest.raises(UserError, match="no such ONNX file"):
        Predictor(compose(recipe, overrides), weights=exported / "missing.onnx")
