"""experiments/collect_results.py on a fake sweep directory: overrides or chosen recipe keys, then AP."""
import importlib
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from detrun.config import save

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


@pytest.fixture
def collect_results(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    return importlib.import_module("collect_results")


@pytest.fixture
def sweep(tmp_path):
    """Jobs 0..1 of ``-m optimizer.lr=0.01,0.02``, as Hydra's multirun leaves them (job 1 without mask AP)."""
    for job, (lr, results) in enumerate([(0.01, {"bbox": {"AP": 50.0, "AP50": 80.0}, "segm": {"AP": 40.0}}),
                                         (0.02, {"bbox": {"AP": 55.5, "AP50": None}})]):
        run_dir = tmp_path / str(job)
        save(OmegaConf.create({"optimizer": {"lr": lr}, "trainer": {"max_iter": 300}}), run_dir / "recipe.yaml")
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"optimizer.lr={lr}", "hydra.sweep.dir=x"]))
        (run_dir / "results.json").write_text(json.dumps(results))
    return tmp_path


def table(capsys) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()]


def test_keys_are_columns_from_each_run_s_recipe(collect_results, sweep, capsys):
    collect_results.main([str(sweep), "optimizer.lr", "trainer.max_iter", "model.depth"])
    rows = table(capsys)
    assert rows[0] == ["optimizer.lr", "trainer.max_iter", "model.depth", "box AP", "box AP50", "mask AP"]
    assert rows[2:] == [["0.01", "300", "–", "50.0", "80.0", "40.0"], ["0.02", "300", "–", "55.5", "nan", "nan"]]


def test_without_keys_rows_show_the_overrides(collect_results, sweep, capsys):
    collect_results.main([str(sweep)])
    rows = table(capsys)
    assert rows[0][0] == "run" and [row[0] for row in rows[2:]] == ["optimizer.lr=0.01", "optimizer.lr=0.02"]


def test_an_empty_sweep_says_so(collect_results, tmp_path):
    with pytest.raises(SystemExit, match="no \\*/results.json under"):
        collect_results.main([str(tmp_path)])
