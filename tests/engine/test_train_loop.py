"""run_train in one process on the CPU, with the toy model of engine_toy."""
import json

import pytest
import torch
from engine_toy import (CrashAfter, RecordSteps, ToyDetector, ToyEvaluator, ToyLoader, read_metrics, toy_recipe,
                        toy_test_loader, train_toy)

from detrun.checkpoint import load_weights
from detrun.config import L
from detrun.engine.launch import LaunchError
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
    straight = train_toy(tmp_path / "straight", cfg)

    crashed = cfg.copy()
    crashed.trainer.hooks = [L(CrashAfter)(iteration=10)]
    with pytest.raises(RuntimeError, match="crash after step 10"):
        train_toy(tmp_path / "resumed", crashed)
    cfg.trainer.resume = True
    resumed = train_toy(tmp_path / "resumed", cfg)

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
    with pytest.raises(FloatingPointError, match=r"non-finite loss loss_box in iteration 13 .*model_0000010\.pth"):
        train_toy(tmp_path / "run", cfg)
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
    ({"amp": "fp32"}, UserError, "not one of: off, bf16, fp16"),
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
