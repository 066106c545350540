"""The panoptic shapes set is a real COCO panoptic set, and COCO panoptic registration reads one.

Checked independently of the generator: PNG ids against segments_info (ids, areas, boxes),
semantic maps against the panoptic PNGs, instance masks against thing segments, and
``task=check_data``'s panoptic checks on broken copies.
"""
import json
import shutil

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from detrun.data import DatasetCatalog, DatasetMapper, MetadataCatalog, register_coco_panoptic, shapes_panoptic_dataset
from detrun.data.check import check_dataset
from detrun.data.datasets.coco_panoptic import SEM_SEG_DONE, id2rgb, rgb2id

TINY = dict(num_images=6, seed=3, image_size=96, min_size=12, max_size=36)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    records = shapes_panoptic_dataset(name="shapes_panoptic_tiny", root=str(root), **TINY)
    yield records, MetadataCatalog.get("shapes_panoptic_tiny")
    DatasetCatalog.remove("shapes_panoptic_tiny")
    MetadataCatalog.remove("shapes_panoptic_tiny")


def read_ids(path):
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_panoptic_files_are_consistent(tiny):
    records, meta = tiny
    data = json.loads(open(meta.panoptic_json).read())
    cats = {c["id"]: c for c in data["categories"]}
    assert sorted(c["name"] for c in cats.values() if c["isthing"]) == ["circle", "square", "triangle"]
    assert sorted(c["name"] for c in cats.values() if not c["isthing"]) == ["checker", "noise", "stripes"]
    stuff_ids = sorted(i for i, c in cats.items() if not c["isthing"])
    for ann in data["annotations"]:
        ids = read_ids(f"{meta.panoptic_root}/{ann['file_name']}")
        segments = {s["id"]: s for s in ann["segments_info"]}
        assert set(np.unique(ids)) == set(segments)  # every pixel labelled, every segment present
        stuff_in_image = [s["category_id"] for s in segments.values() if not cats[s["category_id"]]["isthing"]]
        assert 2 <= len(stuff_in_image) <= 3 and len(set(stuff_in_image)) == len(stuff_in_image)
        semantic = np.asarray(Image.open(f"{meta.sem_seg_root}/{ann['file_name']}"))
        for sid, s in segments.items():
            mask = ids == sid
            ys, xs = np.nonzero(mask)
            assert s["area"] == mask.sum() and s["iscrowd"] == 0
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            expected = 0 if cats[s["category_id"]]["isthing"] else stuff_ids.index(s["category_id"]) + 1
            assert (semantic[mask] == expected).all()


def test_records_carry_instances_and_panoptic_fields(tiny):
    records, meta = tiny
    assert len(records) == TINY["num_images"]
    assert meta.stuff_classes == ["things", "stripes", "checker", "noise"]
    assert meta.stuff_dataset_id_to_contiguous_id == {11: 1, 12: 2, 13: 3}
    for r in records:
        ids = read_ids(r["pan_seg_file_name"])
        things = [s for s in r["segments_info"] if s["isthing"]]
        assert len(things) == len(r["annotations"])
        for ann, seg in zip(r["annotations"], things):  # same objects, same order
            rle = mask_util.frPyObjects(ann["segmentation"], r["height"], r["width"])
            mask = mask_util.decode(mask_util.merge(rle)).astype(bool)
            np.testing.assert_array_equal(mask, ids == seg["id"])
            assert ann["category_id"] == seg["category_id"]


def test_mapper_gives_label_maps_and_check_data_passes(tiny):
    records, meta = tiny
    out = DatasetMapper(is_train=True)(records[0], np.random.default_rng(0))
    assert out["sem_seg"].shape == (96, 96) and set(out["sem_seg"].unique().tolist()) <= {0, 1, 2, 3}
    report = check_dataset("shapes_panoptic_tiny")
    assert not report.problems, report.text
    assert "panoptic: 6 PNGs" in report.text


def test_check_data_finds_broken_panoptic_annotations(tiny, tmp_path):
    _, meta = tiny
    folder = tmp_path / "broken"
    shutil.copytree(str(meta.panoptic_root), folder / "panoptic")
    data = json.loads(open(meta.panoptic_json).read())
    anns = data["annotations"]
    anns[0]["segments_info"][0]["area"] += 7  # wrong area
    anns[1]["segments_info"].pop()  # an id of the PNG that the JSON lacks
    anns[2]["segments_info"][0]["category_id"] = 99  # unknown category
    ids = read_ids(folder / "panoptic" / anns[3]["file_name"])
    ids[ids == anns[3]["segments_info"][0]["id"]] = 0  # a listed segment missing from the PNG
    Image.fromarray(id2rgb(ids)).save(folder / "panoptic" / anns[3]["file_name"])
    (folder / "panoptic.json").write_text(json.dumps(data))
    register_coco_panoptic("broken_panoptic", json_file=meta.json_file, image_root=meta.image_root,
                           panoptic_json=str(folder / "panoptic.json"), panoptic_root=str(folder / "panoptic"),
                           sem_seg_root=str(folder / "semseg"), overwrite=True)
    try:
        kinds = sorted(p.kind for p in check_dataset("broken_panoptic").problems)
    finally:
        DatasetCatalog.remove("broken_panoptic")
        MetadataCatalog.remove("broken_panoptic")
    assert kinds == ["panoptic id mismatch", "panoptic id mismatch", "unknown category id", "wrong panoptic area"]


def write_coco_panoptic(root):
    """Two 12x16 images: things cat (id 5) and dog (id 9), stuff sky (id 30), grass (id 20), void, a crowd."""
    (root / "images").mkdir()
    (root / "panoptic").mkdir()
    images, panoptic, instances = [], [], []
    ids = np.zeros((12, 16), np.int64)
    ids[:6] = 300  # sky
    ids[6:] = 200  # grass
    ids[2:5, 2:6] = 1  # cat
    ids[7:11, 9:13] = 2  # dog (crowd)
    ids[11, :3] = 0  # void
    segments = [{"id": 300, "category_id": 30, "iscrowd": 0}, {"id": 200, "category_id": 20, "iscrowd": 0},
                {"id": 1, "category_id": 5, "iscrowd": 0}, {"id": 2, "category_id": 9, "iscrowd": 1}]
    for s in segments:
        s["area"] = int((ids == s["id"]).sum())
    for image_id, grid in ((7, ids), (8, np.where(ids == 1, 300, ids))):
        Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(root / "images" / f"{image_id}.jpg")
        Image.fromarray(id2rgb(grid)).save(root / "panoptic" / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": 12, "width": 16})
        segs = [dict(s, area=int((grid == s["id"]).sum())) for s in segments if (grid == s["id"]).any()]
        panoptic.append({"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": segs})
    instances.append({"id": 1, "image_id": 7, "category_id": 5, "bbox": [2, 2, 4, 3], "iscrowd": 0, "area": 12,
                      "segmentation": [[2, 2, 6, 2, 6, 5, 2, 5]]})
    cats = [{"id": 5, "name": "cat", "isthing": 1}, {"id": 9, "name": "dog", "isthing": 1},
            {"id": 20, "name": "grass", "isthing": 0}, {"id": 30, "name": "sky", "isthing": 0}]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": instances,
                                                     "categories": [{"id": c["id"], "name": c["name"]} for c in cats[:2]]}))
    (root / "panoptic.json").write_text(json.dumps({"images": images, "annotations": panoptic, "categories": cats}))
    return ids


def test_coco_panoptic_registration_derives_and_caches_semantic_maps(tmp_path):
    ids = write_coco_panoptic(tmp_path)
    register_coco_panoptic("tiny_coco_panoptic", json_file=str(tmp_path / "instances.json"),
                           image_root=str(tmp_path / "images"), panoptic_json=str(tmp_path / "panoptic.json"),
                           panoptic_root=str(tmp_path / "panoptic"), sem_seg_root=str(tmp_path / "semseg"))
    try:
        records = DatasetCatalog.get("tiny_coco_panoptic")
        meta = MetadataCatalog.get("tiny_coco_panoptic")
        assert meta.stuff_classes == ["things", "grass", "sky"]
        assert meta.stuff_dataset_id_to_contiguous_id == {20: 1, 30: 2}
        assert meta.thing_classes == ["cat", "dog"]
        assert [r["image_id"] for r in records] == [7, 8]
        semantic = np.asarray(Image.open(records[0]["sem_seg_file_name"]))
        expected = np.where(ids == 300, 2, np.where(ids == 200, 1, np.where(ids == 0, 255, 0)))
        np.testing.assert_array_equal(semantic, expected)
        segs = {s["id"]: s for s in records[0]["segments_info"]}
        assert segs[1]["category_id"] == 0 and segs[1]["isthing"] and segs[2]["iscrowd"] == 1
        assert segs[300]["category_id"] == 2 and not segs[300]["isthing"]
        assert (tmp_path / "semseg" / SEM_SEG_DONE).is_file()
        stamp = (tmp_path / "semseg" / "7.png").stat().st_mtime_ns
        DatasetCatalog.get("tiny_coco_panoptic")  # cached: not derived again
        assert (tmp_path / "semseg" / "7.png").stat().st_mtime_ns == stamp
        assert not check_dataset("tiny_coco_panoptic").problems
    finally:
        DatasetCatalog.remove("tiny_coco_panoptic")
        MetadataCatalog.remove("tiny_coco_panoptic")


def test_builtin_names_are_registered():
    for name in ("coco_2017_train_panoptic", "coco_2017_val_panoptic", "shapes_panoptic_train", "shapes_panoptic_val"):
        assert name in DatasetCatalog
    assert str(MetadataCatalog.get("coco_2017_val_panoptic").panoptic_root).endswith("coco/panoptic_val2017")


def test_rgb2id_round_trip():
    ids = np.array([[0, 1, 255], [256, 65536, 256 ** 3 - 1]])
    np.testing.assert_array_equal(rgb2id(id2rgb(ids)), ids)
