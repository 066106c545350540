import contextlib
import importlib
import io
import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from pycocotools.coco import COCO

from detrun.config import L, compose, instantiate
from detrun.data import DatasetCatalog, MetadataCatalog, get_dataset, register_all_builtin, register_shapes, shapes_dataset
from detrun.data.datasets.mask_tracing import mask_to_polygons
from detrun.data.datasets.shapes import DEFAULTS, ensure_shapes, generate_shapes, shapes_cache_dir
from detrun.data.datasets.shapes_render import CLASSES, KEYPOINT_NAMES, render_image
from detrun.errors import UserError


def load(json_file):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_file))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools
def test_json_validates_and_masks_equal_rendered_instances(tiny_shapes):
    params, json_file = tiny_shapes
    coco = load(json_file)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.getImgIds()) == 10
    image_dir = json_file.parent / "images"
    render_kw = {k: params[k] for k in DEFAULTS}
    for img_info in coco.loadImgs(coco.getImgIds()):
        index = img_info["id"] - 1
        # re-render independently (the generator redraws only images with holes: attempt 0 is typical)
        for attempt in range(100):
            image, objects = render_image(np.random.default_rng([params["seed"], index, attempt]), **render_kw)
            if not any(mask_to_polygons(o.mask)[1] for o in objects):
                break
        assert np.array_equal(np.asarray(Image.open(image_dir / img_info["file_name"])), image)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info["id"]))
        assert len(anns) == len(objects) and params["min_objects"] <= len(anns)
        label = np.full(image.shape[:2], -1)
        for i, (ann, obj) in enumerate(zip(anns, objects)):
            mask = coco.annToMask(ann).astype(bool)
            assert np.array_equal(mask, obj.mask), f"image {index} object {i}"
            assert ann["category_id"] == obj.cls + 1 and ann["area"] == mask.sum()
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert (label[mask] == -1).all()  # visible masks don't overlap
            label[mask] = i
            kp = np.array(ann["keypoints"]).reshape(-1, 3)
            assert kp.shape == (len(KEYPOINT_NAMES), 3) and ann["num_keypoints"] == (kp[:, 2] > 0).sum()
            # pixels inside each object show its single colour (plus ±5 noise)
            colors = image[mask].astype(int)
            assert (colors.max(0) - colors.min(0) <= 11).all()


def test_keypoints_follow_the_geometry(tiny_shapes):
    coco = load(tiny_shapes[1])
    for ann in coco.loadAnns(coco.getAnnIds()):
        kp = np.array(ann["keypoints"]).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        labelled = {KEYPOINT_NAMES[i] for i in np.nonzero(kp[:, 2])[0]}
        name = CLASSES[ann["category_id"] - 1]
        assert labelled == {"circle": {"center"}, "square": {"top_left", "top_right", "bottom_left", "bottom_right"},
                            "triangle": {"top", "bottom_left", "bottom_right"}}[name]
        if name == "square" and kp[:, 2].min(initial=2) == 2 and (kp[kp[:, 2] > 0, 2] == 2).all():
            # unoccluded square: corners are the box corners (continuous coords = pixel index + 0.5)
            tl = kp[KEYPOINT_NAMES.index("top_left"), :2] + 0.5
            assert abs(tl[0] - x) <= 1 and abs(tl[1] - y) <= 1


def test_generation_is_deterministic_and_cached(tiny_shapes, shapes_root, tmp_path):
    params, json_file = tiny_shapes
    mtime = json_file.stat().st_mtime_ns
    assert ensure_shapes(params, shapes_root) == json_file and json_file.stat().st_mtime_ns == mtime
    # two worker processes write the same annotations and images as one
    parallel = generate_shapes(params, tmp_path / "parallel", workers=2)
    assert json.loads(parallel.read_text()) == json.loads(json_file.read_text())
    for name in ("000000.png", "000009.png"):
        assert (parallel.parent / "images" / name).read_bytes() == (json_file.parent / "images" / name).read_bytes()
    changed = dict(params, seed=params["seed"] + 1)
    assert shapes_cache_dir(changed, shapes_root) != json_file.parent


def test_shapes_dataset_node_registers_name_and_metadata(tiny_shapes, shapes_root):
    params, json_file = tiny_shapes
    kw = {k: params[k] for k in DEFAULTS}
    records = shapes_dataset(name="test_shapes_node", num_images=10, seed=5, root=str(shapes_root), **kw)
    assert len(records) == 10 and len(DatasetCatalog.get("test_shapes_node")) == 10
    meta = MetadataCatalog.get("test_shapes_node")
    assert meta.json_file == str(json_file) and meta.thing_classes == list(CLASSES)
    assert meta.keypoint_flip_map == [["top_left", "top_right"], ["bottom_left", "bottom_right"]]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}


def test_builtin_names_are_registered():
    for name in ("shapes_train", "shapes_val", "coco_2017_train", "coco_2017_val", "keypoints_coco_2017_val"):
        assert name in DatasetCatalog
    assert MetadataCatalog.get("shapes_train").shapes_params["num_images"] >= 1000


@pytest.fixture
def restore_builtin_names():
    yield
    register_all_builtin()  # the recipe nodes below re-register shapes_train / shapes_val


def test_recipe_nodes_build_loaders(tiny_shapes, shapes_root, restore_builtin_names):
    recipe = importlib.import_module("detrun.recipes.common.data.shapes")
    cfg = recipe.dataloader.copy()
    for split in ("train", "test"):
        cfg[split].dataset.root = str(shapes_root)
    cfg.train.dataset.update(num_images=10, seed=5, **{k: tiny_shapes[0][k] for k in DEFAULTS})
    cfg.test.dataset.update(num_images=10, seed=5)
    cfg.train.num_workers = 0
    train = instantiate(cfg.train)
    batch = next(iter(train))
    assert len(batch) == cfg.train.total_batch_size
    assert batch[0]["image"].shape == (3, 96, 96) and len(batch[0]["instances"]) >= 1
    test = instantiate(cfg.test)
    assert len(test) == 10 and next(iter(test))[0]["image"].shape == (3, 96, 96)
    assert MetadataCatalog.get("shapes_val").json_file == str(tiny_shapes[1])


def test_reregistering_updates_metadata_held_elsewhere(tiny_shapes, shapes_root):
    params = tiny_shapes[0]
    kw = {k: params[k] for k in DEFAULTS}
    held = MetadataCatalog.get("test_shapes_rereg")  # e.g. an evaluator built before the loaders
    shapes_dataset(name="test_shapes_rereg", num_images=10, seed=5, root=str(shapes_root), **kw)
    assert held.json_file == str(tiny_shapes[1])
    register_shapes("test_shapes_rereg", num_images=3, seed=5, root=str(shapes_root), **kw)
    assert held.shapes_params["num_images"] == 3 and held.json_file != str(tiny_shapes[1])


def test_replacing_only_the_train_set_resolves_and_names_what_to_set():
    """The README's `dataloader.train.dataset = L(get_dataset)(names="my_train")` on a shapes recipe."""
    cfg = compose("shapes_mask_rcnn")
    assert cfg.dataloader.test.dataset.image_size == cfg.dataloader.train.dataset.image_size == 192
    cfg.dataloader.train.dataset = L(get_dataset)(names="my_train")
    OmegaConf.to_yaml(cfg, resolve=True)  # every task first saves the resolved recipe
    with pytest.raises(UserError, match=r"image_size.*dataloader\.test\.dataset=L\(get_dataset\).*evaluator\.dataset_name"):
        instantiate(cfg.dataloader.test.dataset)
