"""Shared helpers of the ops tests."""
import pytest
import torch

from detrun.ops import dispatch


def backends_for(op: str) -> list:
    """pytest params: every backend implementing `op`, Triton skipped if it can't run CPU tensors here."""
    params = []
    for name in dispatch.BACKENDS:
        if not dispatch.covers(op, name, torch.float32):
            continue
        reason = dispatch.unavailable_reason(name, torch.device("cpu"))
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params
