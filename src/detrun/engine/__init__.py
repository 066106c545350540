"""The train loop, launching and distributed set-up, checkpointing policy, schedules, hooks.

Entry point: ``run_train(cfg, run_dir)`` (``python -m detrun task=train``).
"""
from .hooks import Hook, TrainState
from .schedules import WarmupCosineLR, WarmupMultiStepLR
from .train import run_train

__all__ = ["Hook", "TrainState", "WarmupCosineLR", "WarmupMultiStepLR", "run_train"]
