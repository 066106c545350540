import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from detrun.data import DataError, register_coco_instances
from detrun.data.check import run_check_data
from detrun.errors import UserError


def test_check_data_reports_counts_mapping_and_every_problem(coco_dir, tmp_path, capsys):
    json_path, image_root, data = coco_dir
    data = json.loads(json.dumps(data))
    data["annotations"][0]["bbox"] = [2, 3, 0, 5]  # zero-size box, annotation id 1
    data["annotations"][1]["segmentation"] = [[1, 2, 3, 4]]  # polygon with <3 points, id 2
    data["annotations"].append(dict(data["annotations"][3]))  # duplicate annotation id 4
    data["images"].append({"id": 99, "file_name": "missing.png", "height": 5, "width": 5})
    Image.fromarray(np.zeros((5, 5), dtype=np.float32)).save(tmp_path / "deep.tif")  # refused: 32-bit float
    data["images"].append({"id": 98, "file_name": str(tmp_path / "deep.tif"), "height": 5, "width": 5})
    (tmp_path / "bad.json").write_text(json.dumps(data))
    register_coco_instances("test_check_bad", tmp_path / "bad.json", image_root)
    cfg = OmegaConf.create({"dataset": "test_check_bad", "task": "check_data"})
    with pytest.raises(DataError, match="has 5 problems"):
        run_check_data(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "zero-size box" in out and "annotation id 1" in out
    assert "polygon with <3 points" in out and "annotation id 2" in out
    assert "duplicate annotation id" in out and "missing image" in out and "missing.png" in out
    assert "unsupported image mode" in out and "deep.tif" in out
    assert "images without instances: 4" in out  # a.png (bad ones dropped, crowd left), c.png, missing.png, deep.tif
    # per-class table: dataset id → contiguous id → name
    assert any(line.split()[:3] == ["3", "0", "dog"] for line in out.splitlines())
    assert (tmp_path / "check_data.txt").read_text().strip() == out.strip()


def test_check_data_clean_set_and_usage_errors(coco_dir, tmp_path, capsys):
    register_coco_instances("test_check_clean", coco_dir[0], coco_dir[1])
    run_check_data(OmegaConf.create({"dataset": "test_check_clean"}), tmp_path)
    out = capsys.readouterr().out
    assert "images: 3   instances: 3   crowd regions: 1" in out and "problems: none" in out
    with pytest.raises(UserError, match="needs dataset=NAME"):
        run_check_data(OmegaConf.create({"dataset": None}), tmp_path)
    with pytest.raises(KeyError, match="not registered"):
        run_check_data(OmegaConf.create({"dataset": "no_such_set"}), tmp_path)


def test_check_data_uses_the_recipe_shapes_parameters(tiny_shapes, shapes_root, tmp_path, capsys):
    params = tiny_shapes[0]
    node = {"_target_": "detrun.data.shapes_dataset", "name": "test_check_shapes", "root": str(shapes_root),
            **{k: v for k, v in params.items() if k != "version"}}
    cfg = OmegaConf.create({"dataset": "test_check_shapes", "dataloader": {"train": {"dataset": node}}})
    run_check_data(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "images: 10" in out and "circle" in out and "problems: none" in out


def test_check_data_fails_on_a_set_without_images(coco_dir, tmp_path, capsys):
    empty = dict(coco_dir[2], images=[], annotations=[])
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    register_coco_instances("test_check_empty", tmp_path / "empty.json", coco_dir[1])
    with pytest.raises(DataError, match="1 problems"):
        run_check_data(OmegaConf.create({"dataset": "test_check_empty"}), tmp_path)
    assert "no images" in capsys.readouterr().out


@pytest.mark.parametrize("name, folder", [("coco_2017_val", "coco/"), ("lvis_v1_val", "lvis/")])
def test_check_data_on_a_wrong_layout_names_the_path_and_the_variable(name, folder, tmp_path, monkeypatch):
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path / "nowhere"))
    cfg = OmegaConf.create({"dataset": name, "task": "check_data"})
    with pytest.raises(UserError, match="DETRUN_DATASETS") as error:
        run_check_data(cfg, tmp_path)
    assert str(tmp_path / "nowhere" / folder) in str(error.value)
