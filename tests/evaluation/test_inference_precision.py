"""trainer.inference_amp: the one precision key of task=eval, task=predict and `Predictor` (issue 17)."""
from __future__ import annotations

import pytest
import torch
from evaltest_data import CenterBoxModel
from test_eval_tasks import make_cfg

from detrun.config import L, compose, instantiate
from detrun.errors import UserError
from detrun.evaluation import Predictor
from detrun.evaluation.inference import inference_amp
from detrun.evaluation.tasks import run_eval, run_predict


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("shapes"))


@pytest.fixture
def autocast_seen(monkeypatch) -> list:
    """The CPU autocast dtype (None: off) each CenterBoxModel forward ran under."""
    seen, forward = [], CenterBoxModel.forward

    def recording(self, inputs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return forward(self, inputs)

    monkeypatch.setattr(CenterBoxModel, "forward", recording)
    return seen


def cfg_with(shapes_root, tmp_path, **trainer):
    cfg = make_cfg(shapes_root, L("evaltest_data.CenterBoxModel")())
    cfg.trainer.update(trainer)
    cfg.input = instantiate(cfg.dataloader.test.dataset)[0]["file_name"]
    cfg.output = str(tmp_path / "predictions")
    return cfg


def test_recipes_default_it_to_the_training_precision():
    assert compose("shapes_mask_rcnn", ["trainer.amp=bf16"]).trainer.inference_amp == "bf16"
    cfg = compose("shapes_mask_rcnn", ["trainer.amp=bf16", "trainer.inference_amp=off"])
    assert inference_amp(cfg) == "off"
    del cfg.trainer.inference_amp  # a recipe.yaml saved before the key: trainer.amp
    assert inference_amp(cfg) == "bf16"


@pytest.mark.parametrize("amp, dtype", [("off", None), ("bf16", torch.bfloat16)])
def test_eval_predict_and_predictor_run_in_it(shapes_root, tmp_path, autocast_seen, amp, dtype):
    cfg = cfg_with(shapes_root, tmp_path, inference_amp=amp)
    run_eval(cfg, tmp_path)
    run_predict(cfg, tmp_path)
    instances = Predictor(cfg)(cfg.input)["instances"]
    assert len(instances) == 1 and instances.pred_boxes.tensor.device.type == "cpu"
    assert autocast_seen and set(autocast_seen) == {dtype}
    autocast_seen.clear()
    Predictor(cfg, amp="off")(cfg.input)  # the argument overrides the recipe
    assert autocast_seen == [None]


def test_a_bad_value_is_one_line_naming_the_key(shapes_root, tmp_path, autocast_seen):
    cfg = cfg_with(shapes_root, tmp_path, inference_amp="fast")
    for run in (lambda: run_eval(cfg, tmp_path), lambda: run_predict(cfg, tmp_path), lambda: Predictor(cfg)):
        with pytest.raises(UserError, match=r"^trainer\.inference_amp='fast' is not one of: off, auto, bf16, fp16$"):
            run()
    assert not autocast_seen  # refused before the model ran
