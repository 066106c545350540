"""`trainer.amp`: which autocast dtype each value means, "auto" following the hardware."""
import pytest
import torch

from detrun.engine.train import training_autocast_dtype
from detrun.errors import UserError
from detrun.utils import precision

CPU = torch.device("cpu")


def test_explicit_values():
    assert precision.autocast_dtype("off", CPU) is None
    assert precision.autocast_dtype("bf16", CPU) is torch.bfloat16
    assert precision.autocast_dtype("fp16", torch.device("cuda")) is torch.float16
    with pytest.raises(UserError, match="trainer.amp='fp8' is not one of: off, auto, bf16, fp16"):
        precision.autocast_dtype("fp8", CPU)
    with pytest.raises(UserError, match="test.amp='half'"):
        precision.autocast_dtype("half", CPU, key="test.amp")
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        training_autocast_dtype("fp16", CPU)


def test_auto_is_bf16_only_where_native(monkeypatch):
    native = precision.native_bf16(CPU)
    assert native == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert precision.autocast_dtype("auto", CPU) is (torch.bfloat16 if native else None)
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert training_autocast_dtype("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert training_autocast_dtype("auto", CPU) is None
