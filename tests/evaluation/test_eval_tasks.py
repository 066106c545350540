"""task=eval / predict / show_data and the training report, on a tiny generated shapes set."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from detrun.config import L
from detrun.data import DatasetCatalog, DatasetMapper, build_test_loader, read_image, shapes_dataset
from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator
from detrun.evaluation.report import write_training_report
from detrun.evaluation.tasks import run_eval, run_predict, run_show_data
from detrun.config import instantiate


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


def test_eval_of_an_oracle_scores_100(shapes_root, tmp_path, capsys):
    cfg = make_cfg(shapes_root, L("evaltest_data.OracleModel")(dataset_name="evaltest_shapes_val"))
    run_eval(cfg, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"bbox", "segm", "keypoints"}  # shapes have masks and keypoints
    assert all(results[t]["AP"] == pytest.approx(100.0) for t in results)
    printed = capsys.readouterr().out
    assert "| bbox " in printed and "circle" in printed
    assert (tmp_path / "inference" / "coco_instances_results.json").is_file()


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
