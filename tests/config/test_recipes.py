import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from readme_blocks import readme_recipe_blocks

from detrun.config import InstantiationError, RecipeError, compose, get_recipe, instantiate, list_recipes, load, save
from detrun.config.compose import OverrideError
from detrun.config.lazy import check_targets
from detrun.data import DatasetCatalog, MetadataCatalog

TOY = str(Path(__file__).parent / "recipes" / "toy.py")


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_round_trips_through_yaml(name, tmp_path):
    cfg = get_recipe(name)
    check_targets(cfg)
    save(cfg, tmp_path / f"{name}.yaml")
    assert load(tmp_path / f"{name}.yaml") == cfg


def test_recipes_exist():
    assert "shapes_mask_rcnn" in list_recipes()


def test_get_recipe_returns_a_fresh_tree_each_call():
    first = get_recipe(TOY)
    first.optimizer.lr = 123.0
    assert get_recipe(TOY).optimizer.lr == 0.1


def test_builtin_recipe_mutation_does_not_leak_through_shared_imports():
    name = list_recipes()[0]
    cfg = get_recipe(name)
    key = next(iter(cfg))
    cfg[key] = "mutated"
    assert get_recipe(name)[key] != "mutated"


def test_user_recipe_by_path():
    cfg = get_recipe(TOY)
    assert set(cfg) == {"model", "optimizer", "trainer"}
    assert cfg.model.out_features == 4


def test_unknown_recipe_lists_choices_and_closest_match():
    name = list_recipes()[0]
    with pytest.raises(RecipeError) as info:
        get_recipe(name[:-1] + "x")
    assert f"Did you mean '{name}'" in str(info.value)
    assert "Available recipes" in str(info.value)


def test_missing_recipe_file():
    with pytest.raises(RecipeError, match="does not exist"):
        get_recipe("no/such/recipe.py")


def test_compose_applies_overrides_like_hydra():
    cfg = compose(TOY, ["optimizer.lr=0.5", "+trainer.extra=[1,2]", "~trainer.seed", "++optimizer.nesterov=true"])
    assert cfg.optimizer.lr == 0.5
    assert list(cfg.trainer.extra) == [1, 2]
    assert "seed" not in cfg.trainer
    assert cfg.optimizer.nesterov is True
    assert cfg.task == "train"


def test_compose_missing_key_suggests_closest_and_plus():
    with pytest.raises(OverrideError) as info:
        compose(TOY, ["optimizer.lrr=0.5"])
    message = str(info.value)
    assert "optimizer.lrr" in message and "optimizer.lr" in message and "+optimizer.lrr=" in message


def test_compose_rejects_adding_an_existing_key_and_sweeps():
    with pytest.raises(OverrideError, match="already exists"):
        compose(TOY, ["+optimizer.lr=1"])
    with pytest.raises(OverrideError, match="sweep"):
        compose(TOY, ["optimizer.lr=1,2"])


def test_readme_recipe_reuses_the_imported_model_not_a_neighbour_s_edit(tmp_path):
    """The README's first recipe imports `model` from common/models/mask_rcnn_fpn (ResNet-50, FPN 256)
    and the rest from shapes_mask_rcnn, which edits its own imported `model` into a narrow ResNet-18:
    the user's model must stay R50 whatever the import order."""
    block = readme_recipe_blocks()["my_mask_rcnn.py"]
    lines = block.splitlines()
    imports = [i for i, line in enumerate(lines) if line.startswith("from detrun.recipes")]
    assert len(imports) == 2
    swapped = list(lines)
    swapped[imports[0]], swapped[imports[1]] = lines[imports[1]], lines[imports[0]]
    for order, text in {"as written": block, "shapes import first": "\n".join(swapped)}.items():
        path = tmp_path / f"my_mask_rcnn_{len(order)}.py"
        path.write_text(text)
        cfg = get_recipe(str(path))
        assert (cfg.model.backbone.bottom_up.depth, cfg.model.backbone.out_channels) == (50, 256), order
        assert cfg.model.roi_heads.num_classes == 3 and cfg.optimizer.lr == 0.01
        assert cfg.dataloader.train.dataset.name == "shapes_train"
    shapes = get_recipe("shapes_mask_rcnn")
    assert (shapes.model.backbone.bottom_up.depth, shapes.model.backbone.out_channels) == (18, 64)


RECIPE_WITH_A_CLASS = '''
from detrun.config import L


class Scale:
    """Defined in the recipe file itself."""

    def __init__(self, *, factor: float):
        self.factor = factor


model = L(Scale)(factor=2.0)
'''


def test_class_defined_in_a_recipe_file_is_a_target_in_any_process(tmp_path):
    path = tmp_path / "my_recipe.py"
    path.write_text(RECIPE_WITH_A_CLASS)
    cfg = get_recipe(str(path))
    assert cfg.model._target_ == f"{path.resolve()}:Scale"
    assert instantiate(cfg.model).factor == 2.0
    save(cfg, tmp_path / "recipe.yaml")
    # A fresh process (a rerun, a DDP worker) finds the class by loading the file.
    code = (f"from detrun.config import instantiate, load; "
            f"print(instantiate(load({str(tmp_path / 'recipe.yaml')!r}).model).factor)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.0"


def test_target_in_a_missing_recipe_file_names_its_path(tmp_path):
    cfg = OmegaConf.create({"model": {"_target_": f"{tmp_path}/gone.py:Scale"}})
    with pytest.raises(InstantiationError, match=r"model\._target_ = '.*gone\.py:Scale' can't be imported: .*does not exist"):
        instantiate(cfg.model)


def test_a_saved_recipe_yaml_is_a_recipe(tmp_path):
    cfg = compose(TOY, ["optimizer.lr=0.5", "task=print_config"])
    save(cfg, tmp_path / "recipe.yaml")
    assert get_recipe(str(tmp_path / "recipe.yaml")) == cfg
    # Run again as it is; what to do comes from the command line again.
    again = compose(str(tmp_path / "recipe.yaml"))
    assert again.optimizer.lr == 0.5 and again.model.out_features == 4 and again.task == "train"


def test_compose_twice_on_a_recipe_that_registers_a_data_set(tmp_path):
    recipe = ("from omegaconf import OmegaConf\n"
              "from detrun.data import register_coco_instances\n"
              "register_coco_instances('recipe_registered_train', 'ann.json', 'images')\n"
              "trainer = OmegaConf.create({'max_iter': 1})\n")
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text(recipe)
    second.write_text(recipe)
    try:
        compose(str(first))
        compose(str(first))
        assert "recipe_registered_train" in DatasetCatalog
        with pytest.raises(RecipeError, match="already registered"):  # another file claiming the name still conflicts
            compose(str(second))
    finally:
        DatasetCatalog.remove("recipe_registered_train")
        MetadataCatalog.remove("recipe_registered_train")


def test_interpolation_of_a_deleted_key_names_the_key_and_the_interpolation():
    with pytest.raises(RecipeError) as info:
        compose(TOY, ["~model.in_features"])
    message = str(info.value)
    assert "'model.out_features' = '${.in_features}'" in message and "in_features" in message
    assert "\n" not in message


@pytest.mark.parametrize(("override", "expected"), [
    ("trainer.max_iter=abc", "trainer.max_iter takes an integer (the recipe has 10), not 'abc'"),
    ("trainer.max_iter=1.5", "trainer.max_iter takes an integer (the recipe has 10), not 1.5"),
    ("optimizer.lr=abc", "optimizer.lr takes a number (the recipe has 0.1), not 'abc'"),
    ("optimizer.lr=true", "optimizer.lr takes a number (the recipe has 0.1), not True"),
])
def test_wrong_value_type_names_the_key_and_the_type(override, expected):
    with pytest.raises(OverrideError, match=re.escape(f"'{override}': {expected}")):
        compose(TOY, [override])


def test_values_of_the_right_type_pass():
    cfg = compose(TOY, ["optimizer.lr=1", "trainer.seed=null", "trainer.max_iter=${trainer.gpus}", "trainer.gpus=2"])
    assert (cfg.optimizer.lr, cfg.trainer.seed, cfg.trainer.max_iter) == (1, None, 2)
