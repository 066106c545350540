"""The command line, run as users run it: ``python -m detrun ...`` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from detrun.config import compose

TOY = str(Path(__file__).parent / "recipes" / "toy.py")


def run_cli(*args, cwd=None, full_error=False):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([sys.executable, "-m", "detrun", *args], capture_output=True, text=True, cwd=cwd, env=env)


def assert_one_line_error(result, *needles):
    """Exit 2 and a single ``error: ...`` line on stderr holding every needle."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_override_existing_and_new_key_writes_resolved_recipe(tmp_path):
    result = run_cli(f"recipe={TOY}", "task=print_config", "optimizer.lr=0.5", "+trainer.note=hello",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    saved = OmegaConf.load(tmp_path / "recipe.yaml")
    assert saved.optimizer.lr == 0.5 and saved.trainer.note == "hello"
    assert saved.model.out_features == 4  # interpolation resolved


def test_cfg_job_equals_compose():
    overrides = ["optimizer.lr=0.25", "+trainer.extra=3", "trainer.max_iter=7"]
    result = run_cli(f"recipe={TOY}", "--cfg", "job", *overrides)
    assert result.returncode == 0, result.stderr
    assert OmegaConf.create(result.stdout) == compose(TOY, overrides)


def test_missing_key_is_a_short_error():
    result = run_cli(f"recipe={TOY}", "trainer.max_iters=5")
    assert result.returncode == 2
    assert "trainer.max_iters" in result.stderr and "trainer.max_iter" in result.stderr
    assert "+trainer.max_iters=" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_recipe_lists_available_ones():
    result = run_cli("recipe=shapes_mask_rcn")
    assert result.returncode == 2
    assert "unknown recipe 'shapes_mask_rcn'" in result.stderr and "shapes_mask_rcnn" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_target_names_its_path(tmp_path):
    result = run_cli(f"recipe={TOY}", "task=print_config", "model._target_=torch.nn.NoSuchLayer",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "model._target_ = 'torch.nn.NoSuchLayer'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_task():
    result = run_cli(f"recipe={TOY}", "task=dance")
    assert result.returncode == 2 and "unknown task 'dance'" in result.stderr


def test_multirun_sweep_writes_one_run_dir_per_combination(tmp_path):
    result = run_cli(f"recipe={TOY}", "task=print_config", "-m", "optimizer.lr=0.1,0.2", "trainer.seed=1,2",
                     f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    runs = sorted(tmp_path.glob("*/recipe.yaml"))
    assert len(runs) == 4
    combos = {(OmegaConf.load(p).optimizer.lr, OmegaConf.load(p).trainer.seed) for p in runs}
    assert combos == {(0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2)}


def test_help_lists_recipes_and_keys():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "shapes_mask_rcnn" in result.stdout and "trainer.max_iter" in result.stdout


def test_backbone_short_name_matches_compose():
    overrides = ["recipe=mask_rcnn_R50", "model/backbone=R101", "optimizer.lr=0.01"]
    result = run_cli("--cfg", "job", *overrides)
    assert result.returncode == 0, result.stderr
    printed = OmegaConf.create(result.stdout)
    assert printed == compose("mask_rcnn_R50", overrides)
    assert printed.model.backbone.bottom_up.depth == 101


def test_unknown_backbone_short_name():
    result = run_cli("model/backbone=R99")
    assert result.returncode == 2 and "unknown backbone 'R99'" in result.stderr and "R101" in result.stderr


def test_wrong_value_type_is_a_one_line_error(tmp_path):
    result = run_cli(f"recipe={TOY}", "trainer.max_iter=abc")
    assert_one_line_error(result, "trainer.max_iter takes an integer", "'abc'")
    result = run_cli(f"recipe={TOY}", "-m", "optimizer.lr=0.1,fast", f"hydra.sweep.dir={tmp_path}")
    assert_one_line_error(result, "'optimizer.lr=0.1,fast': optimizer.lr takes a number", "'fast'")


def test_unresolvable_interpolation_is_a_one_line_error_and_a_traceback_on_request(tmp_path):
    args = (f"recipe={TOY}", "task=print_config", "~model.in_features", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(run_cli(*args), "'model.out_features' = '${.in_features}'")
    assert "Traceback" in run_cli(*args, full_error=True).stderr


def test_a_run_s_saved_recipe_runs_again_as_it_is(tmp_path):
    first = run_cli(f"recipe={TOY}", "task=print_config", "optimizer.lr=0.5", f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr
    again = run_cli(f"recipe={tmp_path / 'a' / 'recipe.yaml'}", "task=print_config", f"hydra.run.dir={tmp_path / 'b'}")
    assert again.returncode == 0, again.stderr
    assert OmegaConf.load(tmp_path / "b" / "recipe.yaml") == OmegaConf.load(tmp_path / "a" / "recipe.yaml")
