"""The main job, `python -m detrun`, on a tiny schedule and tiny images: data generation,
training, checkpoint, evaluation, pictures, and resuming the run."""
import json
import math
import os
import subprocess
import sys

import pytest

TINY = [
    "dataloader.train.dataset.num_images=24",
    "dataloader.train.dataset.image_size=96",
    "dataloader.train.dataset.min_size=20",
    "dataloader.train.dataset.max_size=40",
    "dataloader.train.dataset.max_objects=3",
    "dataloader.test.dataset.num_images=6",
    "trainer.log_period=1",
    "trainer.checkpoint_period=4",
]


def run_main_job(run_dir, datasets, *overrides):
    env = {**os.environ, "DETRUN_DATASETS": str(datasets)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "detrun", *TINY, *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, env=env, timeout=600)


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    run_dir = root / "run"
    result = run_main_job(run_dir, root / "datasets", "trainer.max_iter=8")
    assert result.returncode == 0, result.stderr[-4000:]
    return root, run_dir, result


def test_trains_with_finite_decreasing_losses(trained):
    _, run_dir, _ = trained
    losses = [m["total_loss"] for m in read_metrics(run_dir) if "total_loss" in m]
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_writes_results_checkpoint_and_pictures(trained):
    _, run_dir, result = trained
    results = json.loads((run_dir / "results.json").read_text())
    assert {"bbox", "segm"} <= set(results)
    assert all(k in results[task] for task in ("bbox", "segm") for k in ("AP", "AP50", "AP75"))
    for name in ("model_final.pth", "recipe.yaml", "training_curves.png", "val_predictions.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "checkpoints").is_dir()
    assert "results.json" in result.stdout + result.stderr  # the closing summary says where the files are


def test_resume_continues_the_run(trained):
    root, run_dir, _ = trained
    before = [m["iteration"] for m in read_metrics(run_dir) if "total_loss" in m]
    result = run_main_job(run_dir, root / "datasets", "trainer.max_iter=10", "trainer.resume=true")
    assert result.returncode == 0, result.stderr[-4000:]
    after = [m["iteration"] for m in read_metrics(run_dir) if "total_loss" in m]
    assert after[: len(before)] == before and after[len(before):] == [9, 10]
