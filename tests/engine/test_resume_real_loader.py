"""Exact resume with the real train loader and the shapes recipe at a tiny size, and the fault drill.

The toy loader of the other tests doesn't create a DataLoader; the real one does, and creating
its iterator draws from torch's global generator: a resumed run must not let that shift the
training's random numbers (dropout, RPN and ROI sampling).
"""
import pytest
import torch
from engine_toy import straight_and_resumed
from fault_drill import drill, tiny_shapes_recipe


def _final_weights(run_dir):
    return torch.load(run_dir / "model_final.pth", weights_only=True)["model"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_with_the_real_loader_is_bit_exact(tmp_path, num_workers):
    cfg = tiny_shapes_recipe(tmp_path / "datasets", num_workers=num_workers, max_iter=4, checkpoint_period=2)
    straight, resumed = straight_and_resumed(tmp_path, cfg, crash_after=2)
    a, b = _final_weights(straight), _final_weights(resumed)
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, different


def test_fault_drill_kills_and_resumes_bit_exactly(tmp_path):
    """Two tries of `fault_drill.py` (the acceptance drill runs ten): one kill during a checkpoint
    write, one a random moment after a checkpoint."""
    lines = drill(tmp_path, tries=2)
    assert all(line.startswith("exact") for line in lines), lines
