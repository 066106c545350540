"""Pascal VOC loader on a devkit folder the tests write: boxes, flags, built-in names, bad files."""
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from detrun.data import (DataError, DatasetCatalog, DatasetMapper, DatasetNotFoundError, MetadataCatalog, get_dataset,
                         register_pascal_voc)
from detrun.data.check import run_check_data
from detrun.data.datasets.pascal_voc import CLASS_NAMES, load_voc_instances
from detrun.structures import BoxMode


def voc_xml(width, height, objects):
    """An annotation file as the devkit writes it; objects: (name, (xmin, ymin, xmax, ymax), difficult, truncated)."""
    parts = [f"<annotation><filename>x.jpg</filename><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size>"]
    for name, box, difficult, truncated in objects:
        coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>{truncated}</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>")
    return "".join(parts) + "</annotation>"


# id → (width, height, objects); box coordinates are the devkit's 1-based inclusive pixels.
IMAGES = {
    "000005": (50, 40, [("chair", (1, 1, 50, 40), 0, 1), ("person", (10, 5, 20, 30), 1, 0)]),
    "000007": (30, 20, [("tvmonitor", (3, 4, 12, 18), 0, 0)]),
    "2008_000008": (24, 36, []),
}


def write_voc(root, images, splits):
    """A VOC folder: JPEGImages/<id>.jpg, Annotations/<id>.xml (a str spec is the file's text, its image
    30x20) and ImageSets/Main/<split>.txt."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, spec in images.items():
        text = spec if isinstance(spec, str) else voc_xml(*spec)
        (root / "Annotations" / f"{image_id}.xml").write_text(text)
        w, h = (30, 20) if isinstance(spec, str) else spec[:2]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def test_records_follow_the_devkit_layout_and_detectron2_box_convention(tmp_path):
    root = write_voc(tmp_path / "VOC2007", IMAGES, {"trainval": list(IMAGES), "test": ["000007"]})
    records = load_voc_instances(root, "trainval")
    assert [r["image_id"] for r in records] == list(IMAGES)  # the image set's order
    for record, (image_id, (w, h, objects)) in zip(records, IMAGES.items()):
        assert record["file_name"] == str(root / "JPEGImages" / f"{image_id}.jpg")
        assert (record["width"], record["height"]) == (w, h)
        assert len(record["annotations"]) == len(objects)
        for ann, (name, (x0, y0, x1, y1), difficult, truncated) in zip(record["annotations"], objects):
            # 1-based inclusive pixels → continuous: xmin=1..xmax=W is [0, W]
            assert ann["bbox"] == [x0 - 1, y0 - 1, x1, y1] and ann["bbox_mode"] == BoxMode.XYXY_ABS
            assert CLASS_NAMES[ann["category_id"]] == name
            assert (ann["difficult"], ann["truncated"]) == (difficult, truncated)
    whole = records[0]["annotations"][0]["bbox"]
    assert whole == [0, 0, records[0]["width"], records[0]["height"]]  # the whole-image box
    assert [r["image_id"] for r in load_voc_instances(root, "test")] == ["000007"]
    # training input: every box (difficult ones too, as Detectron2 trains), in pixels
    out = DatasetMapper(is_train=True, use_instance_mask=False)(records[0])
    assert out["image"].shape == (3, 40, 50)
    assert out["instances"].gt_boxes.tensor.tolist() == [[0, 0, 50, 40], [9, 4, 20, 30]]
    assert out["instances"].gt_classes.tolist() == [CLASS_NAMES.index("chair"), CLASS_NAMES.index("person")]


def test_the_20_classes_in_the_devkit_order():
    assert len(CLASS_NAMES) == 20 and CLASS_NAMES[0] == "aeroplane" and CLASS_NAMES[14] == "person"
    assert CLASS_NAMES[-1] == "tvmonitor" and list(CLASS_NAMES) == sorted(CLASS_NAMES)  # the devkit's is alphabetical


def test_builtin_names_read_under_detrun_datasets(tmp_path, monkeypatch):
    names = [f"voc_2007_{s}" for s in ("train", "val", "trainval", "test")] + \
            [f"voc_2012_{s}" for s in ("train", "val", "trainval")]
    assert set(names) <= set(DatasetCatalog.list())
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        DatasetCatalog.get("voc_2012_val")
    message = str(err.value)
    assert str(tmp_path / "VOC2012" / "ImageSets" / "Main" / "val.txt") in message
    assert "DETRUN_DATASETS" in message and "VOC2012/" in message
    write_voc(tmp_path / "VOC2012", IMAGES, {"val": ["2008_000008", "000005"]})
    records = get_dataset("voc_2012_val")
    assert [r["image_id"] for r in records] == ["2008_000008", "000005"]
    meta = MetadataCatalog.get("voc_2012_val")
    assert meta.thing_classes == list(CLASS_NAMES) and meta.year == 2012 and meta.evaluator_type == "pascal_voc"


BAD_FILES = {
    "broken": "<annotation><size><width>10</width>",  # cut short
    "nobox": voc_xml(30, 20, [("dog", (1, 1, 5, 5), 0, 0)]).replace("<bndbox>", "<box>").replace("</bndbox>", "</box>"),
    "text": voc_xml(30, 20, [("dog", (2, 2, 9, 9), 0, 0), ("cat", (1, "two", 5, 5), 0, 0)]),
    "alien": voc_xml(30, 20, [("cat", (2, 2, 9, 9), 0, 0), ("cat", (2, 2, 9, 9), 0, 0), ("unicorn", (1, 1, 5, 5), 0, 0)]),
    "flat": voc_xml(30, 20, [("cat", (5, 5, 4, 9), 0, 0)]),
}


def test_each_malformed_file_is_named_with_its_object_index(tmp_path):
    root = write_voc(tmp_path / "voc", {**IMAGES, **BAD_FILES}, {"all": [*IMAGES, *BAD_FILES, "absent"]})
    for bad, pattern in [("broken", r"malformed XML.*broken\.xml"), ("nobox", r"object 0 has no <bndbox>.*nobox\.xml"),
                         ("text", r"object 1 has <ymin>two</ymin>, not a number.*text\.xml"),
                         ("alien", r"object 2 has class 'unicorn'.*alien\.xml.*annotation id 2"),
                         ("flat", r"zero-size box: object 0.*flat\.xml"),
                         ("absent", r"missing annotation file.*absent\.xml")]:
        (root / "ImageSets" / "Main" / f"{bad}.txt").write_text(f"000007\n{bad}\n")
        with pytest.raises(DataError, match=pattern):
            load_voc_instances(root, bad)
    skipped = {r["image_id"]: r for r in load_voc_instances(root, "all", on_error="skip")}
    assert set(skipped) == {*IMAGES, "nobox", "text", "alien", "flat"}  # an unparsable or absent file drops the image
    assert len(skipped["text"]["annotations"]) == 1 and len(skipped["alien"]["annotations"]) == 2


def test_check_data_lists_every_problem_by_file(tmp_path, capsys):
    root = write_voc(tmp_path / "voc", {**IMAGES, **BAD_FILES}, {"all": [*IMAGES, *BAD_FILES]})
    register_pascal_voc("test_voc_bad", root, "all", 2007, overwrite=True)
    with pytest.raises(DataError, match="has 5 problems"):  # one in each bad file
        run_check_data(OmegaConf.create({"dataset": "test_voc_bad"}), tmp_path)
    out = capsys.readouterr().out
    for line in ["malformed XML", "broken.xml", "object 0 has no <bndbox>", "nobox.xml", "not a number", "text.xml",
                 "'unicorn'", "alien.xml", "zero-size box", "flat.xml"]:
        assert line in out, line
    assert "images: 7   instances: 6" in out  # the broken file's image is dropped, the bad objects too
    (root / "ImageSets" / "Main" / "good.txt").write_text("000005\n000007\n")
    register_pascal_voc("test_voc_good", root, "good", 2007, overwrite=True)
    run_check_data(OmegaConf.create({"dataset": "test_voc_good"}), tmp_path)
    assert "problems: none" in capsys.readouterr().out
