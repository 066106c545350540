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
