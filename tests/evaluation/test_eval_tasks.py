"""task=eval / predict / show_data and the training report, on a tiny generated shapes set."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf
import torch
from PIL import Image

from detrun.config import L
from detrun.data import DatasetCatalog, DatasetMapper, build_test_loader, read_image, shapes_dataset
from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator
from detrun.evaluation.report import write_training_report
from detrun.evaluation.tasks import run_eval, run_predict, run_show_data
from detrun.evaluation.trained_weights import UntrainedPredictorError
from detrun.config import instantiate
from evaltest_data import CenterBoxModel


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("shapes"))


def make_cfg(shapes_root: str, model) -> OmegaConf:
    def shapes(name: str, seed: int):
        return L(shapes_dataset)(name=name, num_images=3, seed=seed, image_size=64, max_size=40,
                                  root=shapes_root)

    return OmegaConf.create({
        "task": "eval", "dataset": None, "input": None, "output": None,
        "model": model,
        "dataloader": {
            "train": {"dataset": shapes("evaltest_shapes_train", 0)},
            "test": L(build_test_loader)(dataset=shapes("evaltest_shapes_val", 1),
                                         mapper=L(DatasetMapper)(is_train=False), batch_size=2),
        },
        "evaluator": L(COCOEvaluator)(dataset_name="evaltest_shapes_val", backend="pycocotools"),
        "trainer": {"gpus": 0, "num_processes": 1, "num_machines": 1, "machine_rank": 0,
                    "dist_url": "auto", "amp": "off"},
    })


def strict_json(path):
    """The JSON in `path`, refusing Python's NaN/Infinity extensions as any other JSON reader does."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_eval_of_an_oracle_scores_100(shapes_root, tmp_path, capsys):
    cfg = make_cfg(shapes_root, L("evaltest_data.OracleModel")(dataset_name="evaltest_shapes_val"))
    run_eval(cfg, tmp_path)
    results = strict_json(tmp_path / "results.json")
    assert set(results) == {"bbox", "segm", "keypoints"}  # shapes have masks and keypoints
    assert all(results[t]["AP"] == pytest.approx(100.0) for t in results)
    assert results["bbox"]["APl"] is None  # no large objects in 64-px images: NaN, written as null
    printed = capsys.readouterr().out
    assert "| bbox " in printed and "circle" in printed
    strict_json(tmp_path / "inference" / "coco_instances_results.json")


def test_eval_and_predict_refuse_weights_that_leave_predictors_untrained(shapes_root, tmp_path):
    coco_like = CenterBoxModel(num_classes=90)  # a file trained for 90 classes ...
    torch.save({"format": "detrun", "model": coco_like.state_dict()}, tmp_path / "coco.pth")
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")(num_classes=3, weights=str(tmp_path / "coco.pth")))
    cfg.input = str(tmp_path / "coco.pth")  # never read: the model is refused first
    for run in (run_eval, run_predict):  # ... into a 3-class model: its class predictor stays random
        with pytest.raises(UntrainedPredictorError, match=r"roi_heads\.box_predictor\.cls_score \(file \(91,\) vs "
                           r"model \(4,\)\).*Fix: model\.num_classes=90\."):
            run(cfg, tmp_path)


def test_predict_on_a_folder(shapes_root, tmp_path):
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")())
    records = instantiate(cfg.dataloader.test.dataset)
    folder = tmp_path / "in"
    folder.mkdir()
    for r in records[:2]:
        shutil.copy(r["file_name"], folder)
    cfg.input, cfg.output = str(folder), str(tmp_path / "out")
    run_predict(cfg, tmp_path)
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(predictions) == 2 and {p["category_name"] for p in predictions} == {"square"}
    for r in records[:2]:
        name = r["file_name"].rsplit("/", 1)[-1]
        original = read_image(r["file_name"])
        drawn = np.asarray(Image.open(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png")).convert("RGB"))
        assert (drawn[28:36, 28:36] != original[28:36, 28:36]).any(axis=-1).all()  # inside the mask
    cfg.input = str(tmp_path / "missing")
    with pytest.raises(UserError, match="no such file"):
        run_predict(cfg, tmp_path)


def test_predict_into_the_input_folder_keeps_every_input(shapes_root, tmp_path):
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")())
    record = instantiate(cfg.dataloader.test.dataset)[0]
    Image.open(record["file_name"]).convert("RGB").save(tmp_path / "a.jpg")
    shutil.copy(record["file_name"], tmp_path / "a.png")
    inputs = {name: (tmp_path / name).read_bytes() for name in ("a.jpg", "a.png")}
    cfg.input = cfg.output = str(tmp_path)
    run_predict(cfg, tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in inputs} == inputs
    assert {p.name for p in tmp_path.glob("*.png")} == {"a.png", "a.jpg.png", "a.png.png"}
    assert len(json.loads((tmp_path / "predictions.json").read_text())) == 2


def test_show_data_draws_the_train_set(shapes_root, tmp_path):
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")())
    cfg.task = "show_data"
    run_show_data(cfg, tmp_path)
    assert len(list((tmp_path / "show_data").glob("*.png"))) == 3 + 1  # 3 images + grid
    cfg.dataset = "no_such_set"
    with pytest.raises(UserError, match="not registered"):
        run_show_data(cfg, tmp_path)
    cfg.dataset = "evaltest_shapes_train"
    assert "evaltest_shapes_train" in DatasetCatalog.list()
    run_show_data(cfg, tmp_path / "again")
    assert (tmp_path / "again" / "show_data" / "grid.png").is_file()


def test_training_report(shapes_root, tmp_path):
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")())
    lines = [{"iteration": i, "total_loss": 1.0 / (i + 1), "loss_cls": 0.5 / (i + 1), "lr": 0.01} for i in range(5)]
    lines.append({"iteration": 4, "bbox/AP": 12.5})
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    model = instantiate(cfg.model).train()
    write_training_report(model, cfg, tmp_path)
    assert model.training
    assert Image.open(tmp_path / "training_curves.png").size[0] > 0
    with Image.open(tmp_path / "val_predictions.png") as grid:
        assert grid.size == (3 * 320 + 2 * 4, 320)  # 3 val images in one row
