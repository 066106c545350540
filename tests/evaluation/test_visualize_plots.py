"""Pictures: the Pillow visualizer and the matplotlib training curves."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detrun.structures import BoxMode, Boxes, Instances
from detrun.utils.plots import plot_training_curves, read_metrics
from detrun.utils.visualize import draw_predictions, draw_record


def test_predictions_png_changes_pixels_inside_masks(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    masks = torch.zeros(2, 60, 80, dtype=torch.bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 35:55, 50:75] = True
    keypoints = torch.tensor([[[20.0, 20.0, 0.9], [35.0, 25.0, 0.8]], [[60.0, 45.0, 0.9], [70.0, 50.0, 0.01]]])
    instances = Instances((60, 80), pred_boxes=Boxes(torch.tensor([[10.0, 10, 40, 30], [50, 35, 75, 55]])),
                          scores=torch.tensor([0.9, 0.6]), pred_classes=torch.tensor([0, 1]),
                          pred_masks=masks, pred_keypoints=keypoints)
    path = tmp_path / "pred.png"
    draw_predictions(image, instances, class_names=["cat", "dog"], skeleton=[(0, 1)]).save(path)
    drawn = np.asarray(Image.open(path).convert("RGB"))
    assert drawn.shape == image.shape
    inside = masks.any(0).numpy()
    assert (drawn[inside] != image[inside]).any(axis=1).all()  # every mask pixel is tinted
    assert (drawn[55:, :45] == image[55:, :45]).all()  # far from every object: untouched
    # a low score filters an instance out entirely
    only_first = np.asarray(draw_predictions(image, instances, score_threshold=0.7))
    assert (only_first[40:50, 55:70] == image[40:50, 55:70]).all()


def test_record_with_polygons_crowd_rle_and_keypoints(tmp_path):
    import pycocotools.mask as mask_util

    image = np.full((50, 60, 3), 128, dtype=np.uint8)
    crowd = np.zeros((50, 60), dtype=np.uint8, order="F")
    crowd[30:45, 5:25] = 1
    rle = mask_util.encode(crowd)
    record = {"height": 50, "width": 60, "annotations": [
        {"bbox": [30, 5, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1,
         "segmentation": [[30, 5, 50, 5, 50, 25, 30, 25]], "keypoints": [35, 10, 2, 45, 20, 1], "iscrowd": 0},
        {"bbox": [5, 30, 25, 45], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0,
         "segmentation": rle, "keypoints": [0, 0, 0, 0, 0, 0], "iscrowd": 1},
    ]}
    path = tmp_path / "gt.png"
    draw_record(image, record, class_names=["a", "b"], skeleton=[(0, 1)]).save(path)
    drawn = np.asarray(Image.open(path).convert("RGB"))
    assert (drawn[35:40, 10:20] != 128).any(axis=-1).all()  # inside the crowd RLE
    assert (drawn[12:18, 38:42] != 128).any(axis=-1).all()  # inside the polygon
    with pytest.raises(ValueError, match="don't match"):
        draw_record(np.zeros((10, 10, 3), np.uint8), record)


def test_training_curves_tolerate_missing_keys(tmp_path):
    lines = [{"iteration": i, "total_loss": 2.0 / (i + 1), "loss_cls": 1.0 / (i + 1), "lr": 0.01 * min(1, i / 5)}
             for i in range(20)]
    lines[3].pop("lr")
    lines += [{"iteration": 9, "bbox/AP": 10.0, "segm/AP": 8.0}, {"iteration": 19, "bbox/AP": 20.0, "segm/AP": 15.0},
              {"note": "no iteration"}, {"iteration": 19, "eta": "0:00:00"}]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"iteration": 20, "total_lo')  # killed mid-write
    series = read_metrics(metrics)
    assert len(series["total_loss"]) == 20 and len(series["lr"]) == 19
    assert series["bbox/AP"] == [(9, 10.0), (19, 20.0)] and "eta" not in series
    out = plot_training_curves(metrics, tmp_path / "training_curves.png")
    with Image.open(out) as picture:
        assert picture.size[0] > 1000 and picture.size[1] > 300  # three panels side by side
    assert plot_training_curves(tmp_path / "missing.jsonl", tmp_path / "x.png") is None
    (tmp_path / "empty.jsonl").write_text('{"iteration": 1, "time": 0.5}\n')
    assert plot_training_curves(tmp_path / "empty.jsonl", tmp_path / "y.png") is None
    assert not (tmp_path / "y.png").exists()
