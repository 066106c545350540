import contextlib
import io
import logging

import pytest
from pycocotools.coco import COCO

from detrun.data import DataError, DatasetCatalog, DatasetNotFoundError, MetadataCatalog, get_dataset, load_coco_json, register_coco_instances
from detrun.structures import BoxMode


def reference(json_path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_path))


def test_loader_gives_exactly_pycocotools_annotations(coco_dir):
    json_path, image_root, _ = coco_dir
    records = load_coco_json(json_path, image_root, dataset_name="test_coco_exact")
    coco = reference(json_path)
    meta = MetadataCatalog.get("test_coco_exact")
    # categories sorted by COCO id → contiguous ids, and back
    assert meta.thing_classes == ["dog", "bird", "cat"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 11: 2}
    assert meta.keypoint_names == ["left_eye", "right_eye", "nose"]
    assert meta.keypoint_flip_map == [("left_eye", "right_eye")]
    back = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    assert [r["image_id"] for r in records] == sorted(coco.getImgIds())
    for record in records:
        img = coco.loadImgs(record["image_id"])[0]
        assert (record["height"], record["width"]) == (img["height"], img["width"])
        assert record["file_name"] == str(image_root / img["file_name"])
        ref_anns = coco.loadAnns(coco.getAnnIds(imgIds=record["image_id"]))
        assert len(record["annotations"]) == len(ref_anns)
        for ann, ref in zip(record["annotations"], ref_anns):
            assert ann["id"] == ref["id"]
            assert ann["bbox"] == ref["bbox"] and ann["bbox_mode"] == BoxMode.XYWH_ABS
            assert back[ann["category_id"]] == ref["category_id"]
            assert ann["segmentation"] == ref["segmentation"]
            assert ann["iscrowd"] == ref["iscrowd"]
            # keypoints move from pixel indices to continuous coordinates (+0.5 on x, y)
            assert [v - 0.5 if i % 3 != 2 else v for i, v in enumerate(ann["keypoints"])] == ref["keypoints"]


def test_register_coco_instances_is_lazy_and_by_name(coco_dir):
    json_path, image_root, _ = coco_dir
    register_coco_instances("test_coco_named", json_path, image_root)
    meta = MetadataCatalog.get("test_coco_named")
    assert meta.evaluator_type == "coco" and meta.json_file == json_path
    assert meta.thing_classes == ["dog", "bird", "cat"]  # read from the file on demand
    colors = meta.thing_colors
    assert len(colors) == 3 and len({tuple(c) for c in colors}) == 3 and all(0 <= v <= 255 for c in colors for v in c)
    records = get_dataset("test_coco_named")
    assert len(records) == 3 and sum(len(r["annotations"]) for r in records) == 4
    with pytest.raises(ValueError, match="already registered"):
        register_coco_instances("test_coco_named", json_path, image_root)


def test_unknown_name_suggests_close_match():
    with pytest.raises(KeyError, match="Did you mean 'shapes_val'"):
        DatasetCatalog.get("shapes_vall")


def test_builtin_coco_missing_files_name_path_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        DatasetCatalog.get("coco_2017_val")
    msg = str(info.value)
    assert str(tmp_path / "coco/annotations/instances_val2017.json") in msg and "DETRUN_DATASETS" in msg
    assert str(MetadataCatalog.get("coco_2017_val").json_file) == str(tmp_path / "coco/annotations/instances_val2017.json")


def test_missing_image_root(coco_dir, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="image folder"):
        load_coco_json(coco_dir[0], tmp_path / "nope")


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ('{"images": []}', "'categories'"),
                                         ('[1, 2]', "not in COCO format")])
def test_unreadable_json(tmp_path, coco_dir, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        load_coco_json(path, coco_dir[1])
    assert str(path) in str(info.value)


def _ann(data, ann_id):
    return next(a for a in data["annotations"] if a["id"] == ann_id)


BAD_INPUTS = {
    "zero-size box": lambda d: _ann(d, 2).update(bbox=[30, 20, 0, 14]),
    "negative box": lambda d: _ann(d, 2).update(bbox=[30, 20, 5, -3]),
    "box outside image": lambda d: _ann(d, 2).update(bbox=[55, 20, 12, 14]),
    "unknown category id": lambda d: _ann(d, 2).update(category_id=99),
    "polygon with <3 points": lambda d: _ann(d, 2).update(segmentation=[[30, 20, 42, 20]]),
    "duplicate annotation id": lambda d: _ann(d, 4).update(id=2),
    "duplicate image id": lambda d: d["images"].append(dict(d["images"][0], file_name="a2.png")),
}
EXPECTED_KIND = {"negative box": "zero-size box"}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_annotation_raises_naming_file_and_id(case, write_coco, coco_dir):
    path = write_coco(BAD_INPUTS[case])
    with pytest.raises(DataError) as info:
        load_coco_json(path, coco_dir[1])
    msg = str(info.value)
    assert EXPECTED_KIND.get(case, case) in msg and str(path) in msg
    if "image id" not in case:
        assert "annotation id 2" in msg


def test_skip_mode_drops_and_counts(write_coco, coco_dir, caplog):
    def edit(d):
        _ann(d, 2).update(bbox=[30, 20, 0, 14])
        _ann(d, 4).update(segmentation=[[1, 1, 2, 2]])
    path = write_coco(edit)
    with caplog.at_level(logging.WARNING):
        records = load_coco_json(path, coco_dir[1], on_error="skip")
    assert sorted(a["id"] for r in records for a in r["annotations"]) == [1, 3]
    assert "skipped 2 bad inputs" in caplog.text and "zero-size box" in caplog.text


def test_box_within_tolerance_is_accepted(write_coco, coco_dir):
    # rounding overshoot of half a pixel is normal in COCO files; the mapper clips it
    path = write_coco(lambda d: _ann(d, 2).update(bbox=[30, 20, 30.5, 14]))
    assert len(load_coco_json(path, coco_dir[1])) == 3


def test_get_dataset_skip_switch_reaches_the_coco_loader(write_coco, coco_dir, caplog):
    path = write_coco(lambda d: _ann(d, 2).update(bbox=[30, 20, 0, 14]))  # zero-size box
    register_coco_instances("test_coco_skip_switch", path, coco_dir[1])
    with pytest.raises(DataError, match="zero-size box"):
        get_dataset("test_coco_skip_switch")
    with caplog.at_level(logging.WARNING):
        records = get_dataset("test_coco_skip_switch", on_error="skip")
    assert sorted(a["id"] for r in records for a in r["annotations"]) == [1, 3, 4]
    assert "skipped 1 bad inputs" in caplog.text
