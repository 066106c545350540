"""ADE20K SceneParsing loader on a tiny ADEChallengeData2016 folder the tests write, and SemSegEvaluator's
mIoU on it against a hand-computed value."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from detrun.data import DataError, DatasetCatalog, DatasetNotFoundError, MetadataCatalog, get_dataset
from detrun.data.check import run_check_data
from detrun.data.datasets.ade20k import CLASS_NAMES, load_ade20k_sem_seg, register_ade20k_sem_seg
from detrun.data.image_io import read_label_map
from detrun.evaluation import SemSegEvaluator

# SceneParsing labels as stored: 0 = other (not scored), k = class k - 1.
LABELS = {
    "ADE_val_00000001": np.array([[1, 1, 2, 2], [1, 0, 2, 150], [3, 3, 0, 150]]),
    "ADE_val_00000002": np.array([[2, 2, 2], [1, 1, 0]]),
}


def write_ade(root, labels, split="validation", *, images=None):
    """images/<split>/<name>.jpg and annotations/<split>/<name>.png (labels: name → int array, or raw bytes)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, label in labels.items():
        png = root / "annotations" / split / f"{name}.png"
        if isinstance(label, bytes):
            png.write_bytes(label)
        else:
            Image.fromarray(np.asarray(label, dtype=np.uint8)).save(png)
    for name in labels if images is None else images:
        h, w = np.shape(labels[name]) if name in labels and not isinstance(labels[name], bytes) else (3, 4)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / split / f"{name}.jpg")
    return root


def test_records_hold_training_labels(tmp_path):
    root = write_ade(tmp_path / "ADEChallengeData2016", LABELS)
    records = load_ade20k_sem_seg(root, "val")
    assert [r["image_id"] for r in records] == sorted(LABELS)
    for record in records:
        raw = LABELS[record["image_id"]]
        assert (record["height"], record["width"]) == raw.shape and record["annotations"] == []
        assert record["file_name"] == str(root / "images" / "validation" / f"{record['image_id']}.jpg")
        want = np.where(raw == 0, 255, raw - 1)  # class k - 1; "other" ignored
        np.testing.assert_array_equal(read_label_map(record["sem_seg_file_name"]), want)
    assert load_ade20k_sem_seg(root, "val") == records  # converted once, read back


def test_builtin_names_metadata_and_wrong_layout(tmp_path, monkeypatch):
    assert {"ade20k_sem_seg_train", "ade20k_sem_seg_val"} <= set(DatasetCatalog.list())
    meta = MetadataCatalog.get("ade20k_sem_seg_train")
    assert len(CLASS_NAMES) == 150 and meta.stuff_classes == list(CLASS_NAMES) and meta.ignore_label == 255
    assert CLASS_NAMES[0] == "wall" and CLASS_NAMES[12] == "person" and CLASS_NAMES[-1] == "flag"
    monkeypatch.setenv("DETRUN_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        DatasetCatalog.get("ade20k_sem_seg_train")
    assert str(tmp_path / "ADEChallengeData2016" / "images" / "training") in str(err.value)
    assert "DETRUN_DATASETS" in str(err.value)
    write_ade(tmp_path / "ADEChallengeData2016", {"ADE_train_00000001": LABELS["ADE_val_00000002"]}, "training")
    assert [r["image_id"] for r in get_dataset("ade20k_sem_seg_train")] == ["ADE_train_00000001"]


def test_sem_seg_evaluator_miou_by_hand(tmp_path):
    root = write_ade(tmp_path / "ade", LABELS)
    register_ade20k_sem_seg("test_ade_eval", root, "val", overwrite=True)
    # Predicted classes (0-based): image 1 is right but for one wall (0) pixel called building (1) and
    # its "other" pixels (not scored); image 2 calls its building pixels (2 in the PNG) wall.
    preds = {"ADE_val_00000001": np.array([[0, 1, 1, 1], [0, 5, 1, 149], [2, 2, 7, 149]]),
             "ADE_val_00000002": np.array([[0, 0, 0], [0, 0, 9]])}
    evaluator = SemSegEvaluator("test_ade_eval", distributed=False)
    for name, pred in preds.items():
        scores = torch.nn.functional.one_hot(torch.from_numpy(pred), 150).permute(2, 0, 1).float()
        evaluator.process([{"image_id": name}], [{"sem_seg": scores}])
    m = evaluator.evaluate()["sem_seg"]
    # Labelled pixels (0 = other left out), as (true, predicted):
    #   image 1: wall (0): (0,0) (0,1 wrong: 1) (1,0) -> 2 right, 1 called building; building (1): 3 right;
    #            sky (2): 2 right; flag (149): 2 right.
    #   image 2: building (1): 3 pixels called wall; wall (0): 2 right.
    # wall: TP 4, FN 1, FP 3 (image 2's building) -> 4/8. building: TP 3, FN 3, FP 1 -> 3/7.
    # sky: 2/2. flag: 2/2. Other classes have no labelled pixel: left out of the mean.
    want = np.mean([4 / 8, 3 / 7, 1, 1])
    assert m["mIoU"] == pytest.approx(100 * want)
    assert m["IoU-wall"] == pytest.approx(50) and m["IoU-building"] == pytest.approx(100 * 3 / 7)
    assert m["pACC"] == pytest.approx(100 * 11 / 15)


def test_bad_files_are_reported_by_name(tmp_path, capsys):
    labels = {**LABELS, "ADE_val_00000003": np.array([[1, 200], [151, 2]]),  # labels above 150
              "ADE_val_00000004": b"not a png", "ADE_val_00000005": np.array([[1]])}
    root = write_ade(tmp_path / "ade", labels, images=[*LABELS, "ADE_val_00000003", "ADE_val_00000004", "ADE_val_00000006"])
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(root / "annotations" / "validation" / "ADE_val_00000007.png")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(root / "images" / "validation" / "ADE_val_00000007.jpg")
    with pytest.raises(DataError, match=r"label out of range.*has labels \[151, 200\].*ADE_val_00000003\.png"):
        load_ade20k_sem_seg(root, "val")
    kept = load_ade20k_sem_seg(root, "val", on_error="skip")
    assert [r["image_id"] for r in kept] == sorted(LABELS)
    register_ade20k_sem_seg("test_ade_bad", root, "val", overwrite=True)
    with pytest.raises(DataError, match="has 5 problems"):
        run_check_data(OmegaConf.create({"dataset": "test_ade_bad"}), tmp_path)
    out = capsys.readouterr().out
    for kind, file in [("label out of range", "ADE_val_00000003.png"), ("bad label map", "ADE_val_00000004.png"),
                       ("label map without image", "ADE_val_00000005.png"), ("missing label map", "ADE_val_00000006.jpg"),
                       ("bad label map", "ADE_val_00000007.png")]:
        assert any(kind in line and file in line for line in out.splitlines()), (kind, file)
    assert "images: 2" in out
