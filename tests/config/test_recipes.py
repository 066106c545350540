import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from detrun.config import RecipeError, compose, get_recipe, list_recipes, load, save
from detrun.config.lazy import check_targets
from detrun.config.compose import OverrideError

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


def readme_recipe_blocks() -> dict[str, str]:
    """The README's Python blocks that are recipe files (first line ``# recipes/NAME.py``), by file name."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    return {m[1]: block for block in blocks if (m := re.match(r"# recipes/(\w+\.py)\n", block))}


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
