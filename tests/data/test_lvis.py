"""LVIS v1 loader: records against the JSON the test writes, built-in names, bad files named by id."""
import copy
import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from detrun.data import (DataError, DatasetCatalog, DatasetNotFoundError, MetadataCatalog, get_dataset,
                         register_lvis_instances)
from detrun.data.check import run_check_data
from detrun.data.datasets import load_lvis_json

URL = "http://images.cocodataset.org"


def _lvis_dict():
    """Three images in LVIS v1's style (val takes images from COCO's train2017 and val2017 folders)."""
    return {
        "images": [
            {"id": 5, "height": 40, "width": 60, "coco_url": f"{URL}/val2017/000000000005.jpg",
             "neg_category_ids": [4, 2], "not_exhaustive_category_ids": []},
            {"id": 9, "height": 30, "width": 50, "coco_url": f"{URL}/train2017/000000000009.jpg",
             "neg_category_ids": [], "not_exhaustive_category_ids": [10]},
            {"id": 2, "height": 32, "width": 32, "coco_url": f"{URL}/val2017/000000000002.jpg",
             "neg_category_ids": [1], "not_exhaustive_category_ids": []},
        ],
        # ids not in order and not contiguous; LVIS v1's are 1..1203
        "categories": [
            {"id": 10, "name": "zebra", "frequency": "f", "synonyms": ["zebra"]},
            {"id": 1, "name": "aerosol_can", "frequency": "c", "synonyms": ["aerosol_can"]},
            {"id": 4, "name": "armoire", "frequency": "r", "synonyms": ["armoire"]},
            {"id": 2, "name": "apron", "frequency": "f", "synonyms": ["apron"]},
        ],
        "annotations": [
            {"id": 101, "image_id": 5, "category_id": 10, "bbox": [2.5, 3, 20, 15.5], "area": 310,
             "segmentation": [[2.5, 3, 22.5, 3, 22.5, 18.5, 2.5, 18.5]]},
            {"id": 102, "image_id": 5, "category_id": 1, "bbox": [30, 20, 12, 14], "area": 84,
             "segmentation": [[30, 20, 42, 20, 36, 34]]},
            {"id": 103, "image_id": 9, "category_id": 10, "bbox": [1, 1, 10, 20], "area": 200,
             "segmentation": [[1, 1, 11, 1, 11, 21, 1, 21]]},
        ],
    }


@pytest.fixture
def lvis_root(tmp_path, monkeypatch):
    """$DETRUN_DATASETS with lvis/lvis_v1_val.json and the COCO images its coco_urls name."""
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    data = _lvis_dict()
    rng = np.random.default_rng(0)
    for img in data["images"]:
        folder, name = img["coco_url"].split("/")[-2:]
        (tmp_path / "coco" / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (img["height"], img["width"], 3), dtype=np.uint8)).save(
            tmp_path / "coco" / folder / name)
    (tmp_path / "lvis").mkdir()
    (tmp_path / "lvis" / "lvis_v1_val.json").write_text(json.dumps(data))
    return tmp_path, data


def test_builtin_lvis_v1_val_records_follow_the_file(lvis_root):
    root, data = lvis_root
    records = DatasetCatalog.get("lvis_v1_val")
    contiguous = {10: 3, 1: 0, 4: 2, 2: 1}  # file ids sorted: 1, 2, 4, 10
    assert [r["image_id"] for r in records] == [2, 5, 9]
    images = {img["id"]: img for img in data["images"]}
    for record in records:
        img = images[record["image_id"]]
        folder, name = img["coco_url"].split("/")[-2:]
        assert record["file_name"] == str(root / "coco" / folder / name)
        assert (record["height"], record["width"]) == (img["height"], img["width"])
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            assert record[key] == [contiguous[c] for c in img[key]]
        anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        assert [(a["id"], a["bbox"], contiguous[a["category_id"]], a["segmentation"], 0) for a in anns] == [
            (a["id"], a["bbox"], a["category_id"], a["segmentation"], a["iscrowd"]) for a in record["annotations"]]
    meta = MetadataCatalog.get("lvis_v1_val")
    assert meta.thing_classes == ["aerosol_can", "apron", "armoire", "zebra"]
    assert meta.thing_dataset_id_to_contiguous_id == contiguous
    assert meta.frequency_groups == {"r": [2], "c": [0], "f": [1, 3]}
    assert meta.evaluator_type == "lvis" and len(meta.thing_colors) == 4
    assert len(get_dataset("lvis_v1_val")) == 3


def test_builtin_lvis_wrong_layout_names_path_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        DatasetCatalog.get("lvis_v1_train")
    msg = str(info.value)
    assert str(tmp_path / "lvis/lvis_v1_train.json") in msg and "DETRUN_DATASETS" in msg
    (tmp_path / "lvis").mkdir()
    (tmp_path / "lvis" / "lvis_v1_train.json").write_text(json.dumps(_lvis_dict()))
    with pytest.raises(DatasetNotFoundError) as info:  # the annotations are there, COCO's images are not
        DatasetCatalog.get("lvis_v1_train")
    assert str(tmp_path / "coco") in str(info.value) and "DETRUN_DATASETS" in str(info.value)


def _write(root, edit):
    data = _lvis_dict()
    edit(data)
    path = root / "lvis" / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_bad_annotation_and_category_lists_are_named(lvis_root):
    root, _ = lvis_root

    def zero_box(data):
        data["annotations"][1]["bbox"] = [30, 20, 0, 14]
    path = _write(root, zero_box)
    with pytest.raises(DataError, match=r"zero-size box.*edited\.json.*annotation id 102"):
        load_lvis_json(path, root / "coco")
    records = load_lvis_json(path, root / "coco", on_error="skip")
    assert [a["id"] for r in records for a in r["annotations"]] == [101, 103]

    def unknown_neg(data):
        data["images"][2]["neg_category_ids"] = [1, 77]
    with pytest.raises(DataError, match=r"unknown category id.*\[77\].*image id 2"):
        load_lvis_json(_write(root, unknown_neg), root / "coco")

    def no_lists(data):
        del data["images"][0]["not_exhaustive_category_ids"]
    with pytest.raises(DataError, match=r"not_exhaustive_category_ids.*image id 5"):
        load_lvis_json(_write(root, no_lists), root / "coco")

    def no_frequency(data):
        data["categories"][2]["frequency"] = "x"
    with pytest.raises(DataError, match=r"category id 4 .*'armoire'.*frequency 'x'"):
        load_lvis_json(_write(root, no_frequency), root / "coco")


def test_check_data_reports_lvis_problems_by_id(lvis_root, capsys):
    root, _ = lvis_root

    def edit(data):
        data["annotations"][0]["bbox"] = [50, 3, 20, 15.5]  # leaves the 60-pixel-wide image
        data["images"][1]["neg_category_ids"] = [99]
    register_lvis_instances("test_lvis_check", _write(root, edit), root / "coco")
    with pytest.raises(DataError, match="has 2 problems"):
        run_check_data(OmegaConf.create({"dataset": "test_lvis_check"}), root)
    out = capsys.readouterr().out
    assert "box outside image" in out and "annotation id 101" in out
    assert "unknown category id" in out and "image id 9" in out
    assert "missing image" not in out  # every coco_url resolved to a file under coco/
    clean = copy.deepcopy(_lvis_dict())
    (root / "lvis" / "clean.json").write_text(json.dumps(clean))
    register_lvis_instances("test_lvis_check_clean", root / "lvis" / "clean.json", root / "coco")
    run_check_data(OmegaConf.create({"dataset": "test_lvis_check_clean"}), root)
    assert "problems: none" in capsys.readouterr().out
