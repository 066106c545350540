"""experiments/zoo.py on fake run directories: one row per recipe, metric columns per task, merging."""
import importlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from detrun.config import get_recipe, instantiate, save
from detrun.engine.checkpointer import save_weights

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
# Rows every 20 iterations with the mean s/iter since the previous row; the last row after 10:
# 20 * 2.0 + 20 * 1.0 + 10 * 3.0 = 90 s.
METRICS = [{"iteration": 20, "time": 2.0, "total_loss": 1.0}, {"iteration": 40, "time": 1.0, "total_loss": 0.5},
           {"iteration": 40, "bbox/AP": 10.0}, {"iteration": 50, "time": 3.0, "total_loss": 0.4},
           {"iteration": 50, "bbox/AP": 80.04}]


@pytest.fixture
def zoo(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    return importlib.import_module("zoo")


def fake_run(run_dir: Path, recipe: str, results: dict, overrides: tuple[str, ...] = ()) -> Path:
    """A run directory as `python -m detrun recipe=RECIPE *overrides` leaves it (without weights)."""
    save(get_recipe(recipe), run_dir / "recipe.yaml")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"recipe={recipe}", *overrides, f"hydra.run.dir={run_dir}"]))
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in METRICS))
    return run_dir


def without_a_row(text: str) -> set[str]:
    """The recipes zoo.md's closing note names as having no row."""
    note = "Shapes recipes without a row yet: "
    return {name for line in text.splitlines() if line.startswith(note)
            for name in line[len(note):].rstrip(".").split(", ")}


def millions_of_parameters(recipe: str) -> str:
    return f"{sum(p.numel() for p in instantiate(get_recipe(recipe).model).parameters()) / 1e6:.2f} M"


def test_rows_columns_and_merging(zoo, tmp_path):
    out = tmp_path / "zoo.md"
    zoo.main(["--out", str(out)])  # no runs yet: header and an empty table
    assert zoo.read_table(out) == []
    assert {"shapes_mask_rcnn", "shapes_retinanet"} <= without_a_row(out.read_text())

    mask = fake_run(tmp_path / "mask", "shapes_mask_rcnn", {"bbox": {"AP": 80.04, "AP50": 98.1}, "segm": {"AP": 84.0}},
                    ("trainer.max_iter=50",))
    retina = fake_run(tmp_path / "retina", "shapes_retinanet", {"bbox": {"AP": 75.0, "APl": None}})
    zoo.main([str(mask), str(retina), "--out", str(out), "--no-timing"])
    text = out.read_text()
    assert text.count("# Model zoo") == 1
    assert not {"shapes_mask_rcnn", "shapes_retinanet"} & without_a_row(text)
    assert [line for line in text.splitlines() if line.startswith("|")][1] == "|---|---|---|---:|---:|---:|---:|---:|"
    mask_row = {"recipe": "shapes_mask_rcnn", "architecture": "GeneralizedRCNN",
                "command": "`python -m detrun recipe=shapes_mask_rcnn trainer.max_iter=50`", "train time": "1.5 min",
                "bbox AP": "80.0", "segm AP": "84.0", "params": millions_of_parameters("shapes_mask_rcnn"),
                "CPU ms/image": "–"}
    retina_row = {"recipe": "shapes_retinanet", "architecture": "RetinaNet",
                  "command": "`python -m detrun recipe=shapes_retinanet`", "train time": "1.5 min",
                  "bbox AP": "75.0", "segm AP": "–", "params": millions_of_parameters("shapes_retinanet"),
                  "CPU ms/image": "–"}
    assert zoo.read_table(out) == [mask_row, retina_row]

    # A new run of one recipe replaces its row, with a task no row had before; the other row stays.
    rerun = fake_run(tmp_path / "mask2", "shapes_mask_rcnn",
                     {"bbox": {"AP": 81.0}, "segm": {"AP": 85.0}, "panoptic_seg": {"PQ": 50.0, "SQ": 70.0}})
    zoo.main([str(rerun), "--out", str(out), "--no-timing"])
    mask_row.update({"command": "`python -m detrun recipe=shapes_mask_rcnn`", "bbox AP": "81.0", "segm AP": "85.0",
                     "panoptic_seg PQ": "50.0"})
    assert zoo.read_table(out) == [mask_row, {**retina_row, "panoptic_seg PQ": "–"}]

    # Hand-written run conditions after the table survive a regeneration.
    notes = f"{zoo.NOTES_HEADING}\n\nshapes_mask_rcnn ran alone.\n"
    out.write_text(out.read_text() + "\n" + notes)
    zoo.main([str(rerun), "--out", str(out), "--no-timing"])
    assert out.read_text().endswith(notes) and out.read_text().count(zoo.NOTES_HEADING) == 1
    assert list(zoo.read_table(out)[0]) == ["recipe", "architecture", "command", "train time", "bbox AP", "segm AP",
                                            "panoptic_seg PQ", "params", "CPU ms/image"]


def test_inference_timing_needs_final_weights(zoo, tmp_path):
    run = fake_run(tmp_path / "run", "shapes_mask_rcnn", {"bbox": {"AP": 1.0}})
    out = tmp_path / "zoo.md"
    with pytest.raises(SystemExit, match="model_final.pth does not exist"):
        zoo.main([str(run), "--out", str(out)])

    cfg = get_recipe("shapes_mask_rcnn")
    cfg.dataloader.test.dataset.update(num_images=3, root=str(tmp_path / "datasets"))
    save(cfg, run / "recipe.yaml")
    torch.manual_seed(0)
    save_weights(run / "model_final.pth", instantiate(cfg.model), iteration=50)
    zoo.main([str(run), "--out", str(out), "--images", "1"])
    assert float(zoo.read_table(out)[0]["CPU ms/image"]) > 0
