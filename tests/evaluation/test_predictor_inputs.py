"""`Predictor` inputs (file, PIL image, RGB/BGR arrays), `draw`, recipe names and run folders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from test_inference_precision import cfg_with, shapes_root  # noqa: F401 (a fixture)

import detrun
from detrun.config import compose, instantiate
from detrun.engine.checkpointer import save_weights
from detrun.errors import UserError
from detrun.evaluation import Predictor
from detrun.evaluation.evaluators import evaluator_dataset_name
from detrun.evaluation.pictures import draw_outputs, drawing_style


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple:
    """A 72 x 96 RGB file with coloured blobs, and its pixels."""
    rng = np.random.default_rng(0)
    pixels = np.full((72, 96, 3), 40, dtype=np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, 50), rng.integers(0, 70)
        pixels[y:y + 20, x:x + 24] = rng.integers(60, 255, 3)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def same_instances(a, b) -> None:
    assert a.image_size == b.image_size
    assert torch.equal(a.pred_classes, b.pred_classes)
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.scores, b.scores)
    assert torch.equal(a.pred_masks, b.pred_masks)


@pytest.mark.parametrize("image_format", ["RGB", "BGR"])
def test_a_file_a_pil_image_and_arrays_give_the_same_detections(photo, image_format):
    torch.manual_seed(0)  # random weights: detections that depend on every pixel
    predictor = Predictor(compose("shapes_mask_rcnn", [f"dataloader.test.mapper.image_format={image_format}"]))
    path, rgb = photo
    expected = predictor(path)["instances"]
    assert len(expected) > 0 and expected.image_size == (72, 96)
    same_instances(predictor(Image.open(path))["instances"], expected)
    same_instances(predictor(rgb, channel_order="RGB")["instances"], expected)
    same_instances(predictor(rgb[:, :, ::-1], channel_order="BGR")["instances"], expected)
    # an array without channel_order is in the model's input format, as Detectron2's predictor takes it
    model_order = rgb if image_format == "RGB" else rgb[:, :, ::-1]
    same_instances(predictor(model_order)["instances"], expected)


def test_draw_is_task_predicts_picture(shapes_root, tmp_path, photo):  # noqa: F811
    cfg = cfg_with(shapes_root, tmp_path)  # one detection in the image's centre, score 0.9
    predictor = Predictor(cfg)
    path, rgb = photo
    expected = draw_outputs([{"file_name": str(path)}], [predictor(path)],
                            drawing_style(evaluator_dataset_name(cfg)))[0]
    for image in (path, Image.open(path), rgb):
        picture = predictor.draw(image, channel_order="RGB")
        assert picture.size == (96, 72) and np.array_equal(np.asarray(picture), np.asarray(expected))
    assert not np.array_equal(np.asarray(expected), rgb)  # something was drawn
    assert np.array_equal(np.asarray(predictor.draw(rgb, score_threshold=0.95)), rgb)  # 0.9 < 0.95: nothing


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8, 3), dtype=np.float32), "uint8 array of shape"),
    (np.zeros((8, 8), dtype=np.uint8), "uint8 array of shape"),
])
def test_bad_arrays_are_refused(shapes_root, tmp_path, bad, message):  # noqa: F811
    with pytest.raises(UserError, match=message):
        Predictor(cfg_with(shapes_root, tmp_path))(bad)
    with pytest.raises(UserError, match="channel_order"):
        Predictor(cfg_with(shapes_root, tmp_path))(np.zeros((8, 8, 3), dtype=np.uint8), channel_order="RBG")


def test_recipe_names_and_run_folders(tmp_path, photo):
    torch.manual_seed(0)
    cfg = compose("shapes_mask_rcnn")
    model = instantiate(cfg.model)
    save_weights(tmp_path / "model_final.pth", model, iteration=1)
    (tmp_path / "recipe.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))  # as a run saves it
    path, _ = photo
    expected = Predictor(compose("shapes_mask_rcnn", [f"model.weights={tmp_path / 'model_final.pth'}"]))(path)
    same_instances(detrun.Predictor.from_run_dir(tmp_path)(path)["instances"], expected["instances"])
    by_name = detrun.Predictor("shapes_mask_rcnn", weights=tmp_path / "model_final.pth")(path)
    same_instances(by_name["instances"], expected["instances"])
    with pytest.raises(UserError, match="recipe.yaml does not exist"):
        Predictor.from_run_dir(tmp_path / "elsewhere")

