"""run_train in one process on the CPU, with the toy model of engine_toy."""
import json
import re

import pytest
import torch
from engine_toy import (CrashAfter, RecordSteps, ToyDetector, ToyEvaluator, ToyLoader, read_metrics,
                        straight_and_resumed, toy_recipe, toy_test_loader, train_toy)

from detrun.checkpoint import load_weights
from detrun.config import L
from detrun.engine.launch import LaunchError
from detrun.engine.train import NonFiniteLossError, RunDirError, TrainingInterrupted
from detrun.errors import UserError


def test_run_writes_metrics_checkpoints_weights_and_runs_recipe_hooks(tmp_path):
    cfg = toy_recipe(keep_checkpoints=1, hooks=[L(RecordSteps)(path=str(tmp_path / "steps.jsonl"))])
    run = train_toy(tmp_path / "run", cfg)

    metrics = read_metrics(run)
    assert [m["iteration"] for m in metrics] == [5, 10, 15, 20]
    assert {"loss_cls", "loss_box", "total_loss", "lr", "time", "data_time"} <= set(metrics[0])
    assert metrics[-1]["total_loss"] < 0.7 * metrics[0]["total_loss"]
    # multistep milestones at 0.667 and 0.889 of 20 iterations, base lr 0.1
    assert metrics[-1]["lr"] == pytest.approx(0.001)
    assert list(run.glob("events.out.tfevents.*"))
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["model_0000020.pth"]
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in steps] == list(range(1, 21))
    assert {"loss_cls", "total_loss", "lr", "time"} <= set(steps[0]["metrics"])

    final = torch.load(run / "model_final.pth", weights_only=True)
    last = torch.load(run / "checkpoints" / "model_0000020.pth", weights_only=True)
    assert final["format"] == "detrun" and final["iteration"] == 20
    for name, value in last["model"].items():
        assert torch.equal(final["model"][name], value)
    model = ToyDetector()
    load_weights(model, run / "model_final.pth")  # the models team's loader reads it
    assert torch.equal(model.cls_head.weight, final["model"]["cls_head.weight"])


def _state(run_dir, iteration):
    return torch.load(run_dir / "checkpoints" / f"model_{iteration:07d}.pth", weights_only=True)


def test_resume_is_bit_exact(tmp_path):
    """20 iterations straight == 10, crash, resume, 10 more: with dropout (RNG), EMA, clipping,
    bf16 autocast, momentum and a shuffling loader."""
    cfg = toy_recipe(amp="bf16", clip_grad_norm=0.5, ema={"enabled": True, "decay": 0.9, "warmup_iters": 5})
    cfg.model.dropout = 0.3
    straight, resumed = straight_and_resumed(tmp_path, cfg, crash_after=10)

    a, b = _state(straight, 20), _state(resumed, 20)
    assert a["ema"]["updates"] == b["ema"]["updates"] == 20
    for sa, sb in ((a["model"], b["model"]), (a["ema"]["module"], b["ema"]["module"])):
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), name
    for p, q in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(p["momentum_buffer"], q["momentum_buffer"])
    assert a["ranks"][0]["loader"] == b["ranks"][0]["loader"] == {"position": 20}
    # metrics.jsonl: each iteration once, the same losses
    ma, mb = read_metrics(straight), read_metrics(resumed)
    assert [m["iteration"] for m in mb] == [5, 10, 15, 20]
    assert [m["total_loss"] for m in ma] == [m["total_loss"] for m in mb]


def test_first_metrics_row_after_a_resume_equals_the_uninterrupted_runs(tmp_path):
    """Rows are means over log_period=3 steps; resumed after the checkpoint of step 4, the row of
    step 6 still averages steps 4, 5 and 6."""
    straight, resumed = straight_and_resumed(tmp_path, toy_recipe(max_iter=9, checkpoint_period=4, log_period=3),
                                             crash_after=4)

    keys = ("iteration", "loss_cls", "loss_box", "total_loss", "lr")
    rows = [[{k: m[k] for k in keys} for m in read_metrics(run)] for run in (straight, resumed)]
    assert [r["iteration"] for r in rows[1]] == [3, 6, 9]
    assert rows[1] == rows[0]


def test_a_new_run_refuses_a_directory_holding_a_run_and_resume_continues_it(tmp_path):
    cfg = toy_recipe(max_iter=4, checkpoint_period=2, log_period=2)
    run = train_toy(tmp_path / "run", cfg)
    metrics, saved = (run / "metrics.jsonl").read_text(), sorted((run / "checkpoints").iterdir())
    expected = rf"run directory {re.escape(str(run))} already holds a run .*trainer.resume=true.*hydra.run.dir="
    with pytest.raises(RunDirError, match=expected):
        train_toy(run, cfg)
    # Starting from another run's checkpoint doesn't make it a continuation of this one.
    cfg.trainer.resume = str(tmp_path / "other" / "checkpoints" / "model_0000002.pth")
    with pytest.raises(RunDirError, match=expected):
        train_toy(run, cfg)
    assert (run / "metrics.jsonl").read_text() == metrics and sorted((run / "checkpoints").iterdir()) == saved

    train_toy(run, toy_recipe(max_iter=6, checkpoint_period=2, log_period=2, resume=True))
    assert [m["iteration"] for m in read_metrics(run)] == [2, 4, 6]
    # A checkpoint inside the run directory continues it as well.
    train_toy(run, toy_recipe(max_iter=6, checkpoint_period=2, log_period=2, resume=str(saved[0])))


def test_ctrl_c_says_where_the_last_checkpoint_is_and_how_to_resume(tmp_path):
    cfg = toy_recipe(checkpoint_period=2, hooks=[L(CrashAfter)(iteration=3, interrupt=True)])
    with pytest.raises(TrainingInterrupted, match=r"model_0000002\.pth\. Continue with trainer\.resume=true") as info:
        train_toy(tmp_path / "run", cfg)
    assert isinstance(info.value, KeyboardInterrupt) and isinstance(info.value, UserError)
    assert info.value.exit_code == 130


def test_a_total_batch_the_processes_cannot_share_names_both_numbers(tmp_path):
    cfg = toy_recipe(num_processes=2)
    cfg.dataloader.train.total_batch_size = 3
    with pytest.raises(LaunchError, match=r"total_batch_size=3 .* 2 processes of this run \(trainer.num_processes=2\)"):
        train_toy(tmp_path, cfg)


def test_gradient_accumulation_of_two_halves_equals_one_full_batch(tmp_path):
    def final_weights(name, batch, accum):
        cfg = toy_recipe(grad_accum=accum, max_iter=6)
        cfg.dataloader.train = L(ToyLoader)(size=32, total_batch_size=batch, shuffle=False)
        return torch.load(train_toy(tmp_path / name, cfg) / "model_final.pth", weights_only=True)["model"]

    accumulated, full = final_weights("accum", 4, 2), final_weights("full", 8, 1)
    for name, value in full.items():
        torch.testing.assert_close(accumulated[name], value, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    cfg = toy_recipe(amp="bf16", max_iter=30, log_period=1, hooks=[L(RecordSteps)(path=str(tmp_path / "s.jsonl"))])
    cfg.dataloader.train = L(ToyLoader)(size=4, total_batch_size=4, shuffle=False)  # one fixed batch
    cfg.lr_scheduler.milestones = []
    run = train_toy(tmp_path / "run", cfg)
    losses = [m["total_loss"] for m in read_metrics(run)]
    assert losses[-1] < 0.3 * losses[0]
    assert {json.loads(line)["dtype"] for line in (tmp_path / "s.jsonl").read_text().splitlines()} == {"torch.bfloat16"}


def test_non_finite_loss_stops_naming_the_term_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = toy_recipe(checkpoint_period=5)
    cfg.model.fail_at, cfg.model.fail = 13, ["nan"]
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss loss_box in iteration 13 .*model_0000010\.pth"):
        train_toy(tmp_path / "run", cfg)  # a UserError: the command line prints it as one line, exit 2
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert saved == ["model_0000005.pth", "model_0000010.pth"]
    assert not (tmp_path / "run" / "model_final.pth").exists()


def test_periodic_and_final_evaluation(tmp_path, monkeypatch):
    import detrun.evaluation.report

    reports = []
    # The report draws real detections on real images; here only the call matters.
    monkeypatch.setattr(detrun.evaluation.report, "write_training_report",
                        lambda model, cfg, run_dir: reports.append((type(model), run_dir)))
    cfg = toy_recipe(eval_period=10)
    cfg.evaluator = L(ToyEvaluator)()
    cfg.dataloader.test = L(toy_test_loader)()
    run = train_toy(tmp_path / "run", cfg)
    evaluated = [m for m in read_metrics(run) if "bbox/AP" in m]
    assert [m["iteration"] for m in evaluated] == [10, 20]
    assert json.loads((run / "results.json").read_text())["bbox"]["AP"] == evaluated[-1]["bbox/AP"]
    assert reports == [(ToyDetector, run)]


@pytest.mark.parametrize("settings, error, needle", [
    ({"gpus": 1}, LaunchError, "trainer.gpus=0"),
    ({"amp": "fp16"}, UserError, "trainer.amp=bf16"),
    ({"amp": "fp32"}, UserError, "not one of: off, auto, bf16, fp16"),
    ({"grad_accum": 0}, UserError, "grad_accum=0 must be >= 1"),
    ({"machine_rank": 1}, LaunchError, "machine_rank one of 0 .. num_machines-1"),
    ({"num_processes": 2, "dist_url": "localhost:1234"}, LaunchError, "not 'auto' or 'tcp://HOST:PORT'"),
    ({"num_processes": 2, "num_machines": 2}, LaunchError, "dist_url=auto only works on one machine"),
])
def test_settings_that_cannot_work_say_what_to_do(tmp_path, settings, error, needle):
    if "gpus" in settings and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(error, match=needle):
        train_toy(tmp_path, toy_recipe(**settings))
