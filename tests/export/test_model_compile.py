"""torch.compile of a detector's backbone and heads (``trainer.inference_compile`` / ``trainer.compile``):
the compiled shapes model gives eager's detections on the CPU.

The detector is compiled with ``aot_eager`` (graph capture and AOT autograd, no code generation)
in every run, and with inductor (C++ code generated and compiled for the CPU: 30-80 s here,
mostly gcc) with ``DETRUN_SLOW_TESTS=1`` and a C++ compiler."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from detrun.config import compose
from detrun.errors import UserError
from detrun.export import compile as compile_module
from detrun.export.compile import build_model, compile_backend, compile_model, compile_targets

from export_testing import ARCHITECTURES, assert_same_instances, build, inputs_of, slow

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the trainer tests' toy detector and recipe
from engine_toy import read_metrics, toy_recipe, train_toy  # noqa: E402

HAS_CXX = bool(shutil.which("g++") or shutil.which("clang++"))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=[
    slow, pytest.mark.skipif(not HAS_CXX, reason="inductor on the CPU needs a C++ compiler")])])
def test_compiled_mask_rcnn_gives_eager_detections(backend):
    eager, compiled = build("mask_rcnn"), build("mask_rcnn")  # the same seeded weights
    compile_model(compiled, backend)
    # One padded size (128 x 160): a second would recompile the backbone for dynamic shapes.
    for seed, size in enumerate([(128, 160), (112, 150)]):
        inputs = inputs_of(size, seed, output_scale=1.5 if seed else 1.0)
        with torch.no_grad():
            expected, actual = eager(inputs)[0]["instances"], compiled(inputs)[0]["instances"]
        assert len(expected) > 0, "the test needs detections"
        assert_same_instances(expected, actual, exact=False)


def test_targets_are_the_backbone_and_every_head():
    assert list(compile_targets(build("mask_rcnn"))) == [
        "backbone", "proposal_generator.rpn_head", "roi_heads.box_head", "roi_heads.mask_head"]
    assert list(compile_targets(build("retinanet"))) == ["backbone", "head"]
    cascade = compile_targets(build("cascade_mask_rcnn"))
    assert [n for n in cascade if n.startswith("roi_heads.box_head")] == [f"roi_heads.box_head.{i}" for i in range(3)]


def test_inference_compile_key_builds_a_compiled_model():
    recipe, overrides = ARCHITECTURES["retinanet"]
    model = build_model(compose(recipe, [*overrides, "trainer.inference_compile=aot_eager"]))
    state = model.state_dict()
    assert all(m._compiled_call_impl is not None for m in compile_targets(model).values())
    assert not any("_orig_mod" in k for k in state), "checkpoint names must not change"
    plain = build_model(compose(recipe, overrides))
    assert all(m._compiled_call_impl is None for m in compile_targets(plain).values())
    assert state.keys() == plain.state_dict().keys()


@pytest.mark.parametrize("value, expected", [("true", "inductor"), ("false", None), ("aot_eager", "aot_eager")])
def test_compile_values(value, expected):
    assert compile_backend(compose("shapes_retinanet", [f"trainer.compile={value}"]), "trainer.compile") == expected


def test_bad_compile_value_names_the_key():
    with pytest.raises(UserError, match=r"trainer.compile='fast': use true, false or a torch.compile backend"):
        compile_backend(compose("shapes_retinanet", ["trainer.compile=fast"]), "trainer.compile")


def test_trainer_compile_trains_like_eager(tmp_path, monkeypatch):
    compiled_parts = []

    def spy(model, backend="inductor", dynamic=None):
        compiled_parts.extend((name, backend) for name in compile_targets(model))
        return compile_model(model, backend, dynamic)

    monkeypatch.setattr(compile_module, "compile_model", spy)

    def train(name, **trainer):
        run = train_toy(tmp_path / name, toy_recipe(max_iter=6, log_period=1, **trainer))
        return read_metrics(run), torch.load(run / "model_final.pth", weights_only=True)["model"]

    (eager_metrics, eager), (metrics, weights) = train("eager"), train("compiled", compile="aot_eager")
    assert compiled_parts == [("cls_head", "aot_eager"), ("box_head", "aot_eager")]
    assert len(metrics) == len(eager_metrics) == 6
    for row, expected in zip(metrics, eager_metrics):
        assert row["total_loss"] == pytest.approx(expected["total_loss"], rel=1e-5)
    assert weights.keys() == eager.keys()
    for name, value in eager.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6)
