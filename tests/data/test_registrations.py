"""Data sets a recipe registers reach processes started fresh (spawned DDP ranks, loader workers)."""
import multiprocessing

import pytest
import torch.multiprocessing
from readme_blocks import readme_recipe_blocks

from detrun.config import get_recipe, instantiate
from detrun.data import DatasetCatalog, MetadataCatalog, build_test_loader, carry_registrations
from detrun.data.registrations import restore, snapshot

RECIPE = '''
from omegaconf import OmegaConf
from detrun.config import L
from detrun.data import DatasetCatalog, MetadataCatalog, get_dataset, register_coco_instances

register_coco_instances("test_reg_coco", {json!r}, {images!r})


def _records():
    return [{{"file_name": "x.png", "height": 4, "width": 6, "image_id": 1, "annotations": []}}]


DatasetCatalog.register("test_reg_function", _records)   # defined in the recipe: not importable elsewhere
DatasetCatalog.register("test_reg_lambda", lambda: _records() * 2)
MetadataCatalog.get("test_reg_function").thing_classes = ["thing"]

dataloader = OmegaConf.create({{"train": L(get_dataset)(names="test_reg_function")}})
'''
NAMES = ("test_reg_coco", "test_reg_function", "test_reg_lambda")
EXPECTED = {"test_reg_coco": (3, ["dog", "bird", "cat"]), "test_reg_function": (1, ["thing"]),
            "test_reg_lambda": (2, None)}


@pytest.fixture(scope="module")
def recipe_registered(coco_dir, tmp_path_factory):
    recipe = tmp_path_factory.mktemp("recipe") / "my_recipe.py"
    recipe.write_text(RECIPE.format(json=str(coco_dir[0]), images=str(coco_dir[1])))
    get_recipe(str(recipe))  # runs the recipe in this process, as the command line does
    assert what_this_process_knows(NAMES) == EXPECTED


def what_this_process_knows(names):
    """Records and classes of each data set, as this process sees them."""
    return {name: (len(DatasetCatalog.get(name)), MetadataCatalog.get(name).get("thing_classes")) for name in names}


class KnownDataSets:
    """A mapper that looks data sets up, as Detectron2-style mappers read metadata."""

    def __call__(self, record, rng=None):
        return what_this_process_knows(NAMES)


def test_spawned_process_gets_the_recipe_data_sets(recipe_registered):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(carry_registrations(what_this_process_knows), (NAMES,)) == EXPECTED


def test_loader_workers_started_fresh_get_the_recipe_data_sets(recipe_registered):
    start_method = torch.multiprocessing.get_start_method()
    torch.multiprocessing.set_start_method("spawn", force=True)  # Python 3.14's default is forkserver
    try:
        loader = build_test_loader(dataset=[{"image_id": 0}], mapper=KnownDataSets(), num_workers=1)
        assert [batch for batch in loader] == [[EXPECTED]]
    finally:
        torch.multiprocessing.set_start_method(start_method, force=True)


def test_restore_in_the_same_or_a_forked_process_changes_nothing():
    snap = snapshot()
    before = DatasetCatalog.list()
    restore(snap)
    assert DatasetCatalog.list() == before


def test_readme_own_data_set_recipe_trains_and_evaluates_on_its_registered_sets(coco_dir, tmp_path):
    """The README's "Your own data set" recipe, verbatim but for the paths (both sets: the tiny COCO set)."""
    json_path, image_root, _ = coco_dir
    block = readme_recipe_blocks()["my_data.py"]
    for split in ("train", "val"):
        block = block.replace(f'"path/to/{split}.json"', repr(str(json_path)))
        block = block.replace(f'"path/to/{split}_images"', repr(str(image_root)))
    (tmp_path / "my_data.py").write_text(block)
    try:
        cfg = get_recipe(str(tmp_path / "my_data.py"))
        assert cfg.model.roi_heads.num_classes == 3 and cfg.evaluator.dataset_name == "my_val"
        batch = next(iter(instantiate(cfg.dataloader.train)))
        assert len(batch) == cfg.dataloader.train.total_batch_size
        assert {r["file_name"].rsplit("/", 1)[-1] for r in batch} <= {"a.png", "b.png", "c.png"}
        tested = [r["image_id"] for b in instantiate(cfg.dataloader.test) for r in b]
        assert sorted(tested) == [4, 7, 10]
        evaluator = instantiate(cfg.evaluator, output_dir=str(tmp_path / "inference"))
        assert evaluator.dataset_name == "my_val"
    finally:
        for name in ("my_train", "my_val"):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
