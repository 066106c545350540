import json
import os
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from cityscapes_files import H, IDS, W, write_cityscapes
from detrun.data import DataError, DatasetCatalog, MetadataCatalog
from detrun.data.check import run_check_data
from detrun.data.datasets.cityscapes import ensure_train_id_maps, register_cityscapes
from detrun.data.datasets.cityscapes_labels import LABELS, label_id_to_train_id_table
from detrun.data.mapper import DatasetMapper
from detrun.data.problems import DatasetNotFoundError

THINGS = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
# label id -> train id for the labels the fixture draws, from the public table (0: unlabeled).
TRAIN_IDS = {0: 255, 7: 0, 11: 2, 23: 10, 24: 11, 26: 13, 28: 15, 29: 255}


@pytest.fixture(scope="module")
def city_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    return root, write_cityscapes(root)


@pytest.fixture
def register(request):
    names = []

    def _register(name, root, task, **kwargs):
        register_cityscapes(name, task=task, image_dir=root / "leftImg8bit/val", gt_dir=root / "gtFine/val",
                            overwrite=True, **kwargs)
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _mask(polygon) -> np.ndarray:
    img = Image.new("L", (W, H), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in polygon], fill=1)
    return np.asarray(img).astype(bool)


def test_label_table_is_the_official_one():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels").labels
    official = [(l.name, l.id, l.trainId, l.category, l.hasInstances, l.ignoreInEval, tuple(l.color)) for l in labels]
    ours = [(l.name, l.id, l.train_id, l.category, l.has_instances, l.ignore_in_eval, l.color) for l in LABELS]
    assert ours == official


def test_instance_records_classes_crowd_and_boxes(city_root, register):
    root, written = city_root
    name = register("test_cs_instances", root, "instance_seg")
    records = DatasetCatalog.get(name)
    assert MetadataCatalog.get(name).thing_classes == THINGS
    assert [Path(r["file_name"]).name.replace("_leftImg8bit.png", "") for r in records] == sorted(written)
    assert len({r["image_id"] for r in records}) == len(records) == 5
    n_crowd = 0
    for record in records:
        core = Path(record["file_name"]).name.replace("_leftImg8bit.png", "")
        assert (record["height"], record["width"]) == (H, W)
        assert os.path.isfile(record["instance_ids_file"]) and os.path.isfile(record["label_ids_file"])
        # things only (caravan is ignored by the evaluation, background and license plate are not things)
        expected = [o for o in written[core] if o["label"] in ("car", "person", "bus", "cargroup")]
        assert len(record["annotations"]) == len(expected)
        for ann, obj in zip(record["annotations"], expected):
            crowd = obj["label"] == "cargroup"
            n_crowd += crowd
            assert THINGS[ann["category_id"]] == ("car" if crowd else obj["label"])
            assert ann["iscrowd"] == int(crowd)
            assert ann["segmentation"] == [[v + 0.5 for p in obj["polygon"] for v in p]]
            ys, xs = np.nonzero(_mask(obj["polygon"]))  # the pixels PIL fills, as the official tools draw
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert n_crowd > 0
    # the mapper turns the polygons into masks (crowd regions left out in training)
    out = DatasetMapper(is_train=True, mask_format="bitmask")(records[0])
    assert len(out["instances"]) == sum(not a["iscrowd"] for a in records[0]["annotations"])


def test_semantic_records_map_label_ids_to_train_ids(tmp_path, register):
    write_cityscapes(tmp_path, seed=1)
    name = register("test_cs_sem_seg", tmp_path, "sem_seg")
    meta = MetadataCatalog.get(name)
    assert len(meta.stuff_classes) == 19 and meta.stuff_classes[13] == "car" and meta.ignore_label == 255
    records = DatasetCatalog.get(name)
    assert len(records) == 5
    for record in records:
        label_ids = np.asarray(Image.open(record["label_ids_file"]))
        assert set(np.unique(label_ids)) <= set(TRAIN_IDS)
        expected = np.vectorize(TRAIN_IDS.get)(label_ids)
        np.testing.assert_array_equal(np.asarray(Image.open(record["sem_seg_file_name"])), expected)
        assert record["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png")
    assert ensure_train_id_maps(records) == 0  # derived once, then reused
    # the mapper reads the derived map for training
    out = DatasetMapper(is_train=True)(records[0])
    np.testing.assert_array_equal(out["sem_seg"].numpy(), np.asarray(Image.open(records[0]["sem_seg_file_name"])))


def test_train_id_table_matches_cityscapesscripts():
    cs = pytest.importorskip("cityscapesscripts.helpers.labels")
    table = label_id_to_train_id_table()
    for label_id, label in cs.id2label.items():
        if label_id >= 0:
            assert table[label_id] == (label.trainId if 0 <= label.trainId < 255 else 255)
    assert set(IDS.values()) - {-1} <= set(TRAIN_IDS)


def test_builtin_names_and_a_wrong_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        DatasetCatalog.get("cityscapes_fine_instance_seg_val")
    message = str(err.value)
    assert str(tmp_path / "cityscapes/leftImg8bit/val") in message and "DETRUN_DATASETS" in message
    write_cityscapes(tmp_path / "cityscapes")
    assert len(DatasetCatalog.get("cityscapes_fine_instance_seg_val")) == 5
    assert len(DatasetCatalog.get("cityscapes_fine_sem_seg_val")) == 5
    os.rename(tmp_path / "cityscapes/gtFine", tmp_path / "cityscapes/gtfine")
    with pytest.raises(DatasetNotFoundError, match="ground-truth folder .*cityscapes/gtFine/val"):
        DatasetCatalog.get("cityscapes_fine_sem_seg_val")


def test_malformed_polygons_json_named_by_file_and_object(tmp_path, register, capsys):
    write_cityscapes(tmp_path, seed=2)
    gt = sorted((tmp_path / "gtFine/val/aachen").glob("*_polygons.json"))
    data = json.loads(gt[0].read_text())
    data["objects"][4]["polygon"] = [[1, 2], [3, 4]]  # two points
    data["objects"][3]["label"] = "spaceship"
    gt[0].write_text(json.dumps(data))
    gt[1].write_text("{not json")
    name = register("test_cs_bad", tmp_path, "instance_seg")
    with pytest.raises(DataError, match=r"object 3 has label 'spaceship'.*" + gt[0].name):
        DatasetCatalog.get(name)
    records = DatasetCatalog.get(name, on_error="skip")
    assert len(records) == 4  # the undecodable file's image dropped, the bad objects too
    with pytest.raises(DataError, match="has 3 problems"):
        run_check_data(OmegaConf.create({"dataset": name, "task": "check_data"}), tmp_path)
    out = capsys.readouterr().out
    assert f"bad polygon: object 4 ('{data['objects'][4]['label']}')" in out and gt[0].name in out
    assert "unknown label: object 3 has label 'spaceship'" in out
    assert "bad annotation file" in out and gt[1].name in out
