"""Fixtures: a hand-made COCO set (non-contiguous category ids, polygons, RLE crowd, keypoints) and a tiny shapes set."""
import copy
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from detrun.data.datasets.shapes import _params, ensure_shapes

TINY_SHAPES = dict(image_size=96, min_objects=2, max_objects=5, min_size=12, max_size=36,
                   occlusion_prob=0.5, max_occluded_fraction=0.4)


def _coco_dict():
    crowd = np.zeros((40, 60), dtype=np.uint8, order="F")
    crowd[5:15, 40:55] = 1
    rle = mask_util.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    kp_names = ["left_eye", "right_eye", "nose"]
    return {
        "images": [
            {"id": 10, "file_name": "a.png", "height": 40, "width": 60},
            {"id": 4, "file_name": "b.png", "height": 50, "width": 30},
            {"id": 7, "file_name": "c.png", "height": 32, "width": 32},
        ],
        "categories": [
            {"id": 11, "name": "cat", "keypoints": kp_names, "skeleton": []},
            {"id": 3, "name": "dog", "keypoints": kp_names, "skeleton": []},
            {"id": 7, "name": "bird", "keypoints": kp_names, "skeleton": []},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 11, "bbox": [2.5, 3, 20, 15.5], "iscrowd": 0, "area": 200,
             "segmentation": [[2.5, 3, 22.5, 3, 22.5, 18.5, 2.5, 18.5]],
             "keypoints": [5, 6, 2, 15, 6, 2, 10, 10, 1], "num_keypoints": 3},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [30, 20, 12, 14], "iscrowd": 0, "area": 84,
             "segmentation": [[30, 20, 42, 20, 36, 34], [31, 30, 33, 30, 32, 33]],
             "keypoints": [0, 0, 0, 40, 22, 2, 35, 25, 2], "num_keypoints": 2},
            {"id": 3, "image_id": 10, "category_id": 7, "bbox": [40, 5, 15, 10], "iscrowd": 1, "area": 150,
             "segmentation": rle, "keypoints": [0] * 9, "num_keypoints": 0},
            {"id": 4, "image_id": 4, "category_id": 7, "bbox": [1, 1, 10, 40], "iscrowd": 0, "area": 300,
             "segmentation": [[1, 1, 11, 1, 11, 41, 1, 41]], "keypoints": [2, 2, 2, 9, 2, 2, 5, 20, 2],
             "num_keypoints": 3},
        ],
    }


@pytest.fixture(scope="session")
def coco_dir(tmp_path_factory):
    """Folder with images/ and annotations.json; returns (json_path, image_root, dict)."""
    root = tmp_path_factory.mktemp("coco")
    images = root / "images"
    images.mkdir()
    data = _coco_dict()
    rng = np.random.default_rng(0)
    for img in data["images"]:
        arr = rng.integers(0, 255, (img["height"], img["width"], 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / img["file_name"])
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path, images, data


@pytest.fixture
def write_coco(coco_dir, tmp_path):
    """write_coco(edit_fn) → path of a copy of the hand-made JSON changed by edit_fn(dict)."""
    def write(edit):
        data = copy.deepcopy(coco_dir[2])
        edit(data)
        path = tmp_path / "edited.json"
        path.write_text(json.dumps(data))
        return path
    return write


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def tiny_shapes(shapes_root):
    """(params, annotation file) of a 10-image, 96-px shapes set generated once per session."""
    params = _params(10, 5, **TINY_SHAPES)
    return params, ensure_shapes(params, shapes_root)
