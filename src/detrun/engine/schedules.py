"""Learning-rate schedules: a multiplier of the optimizer's base lr as a function of the iteration.

A schedule is stateless (the multiplier depends on the iteration alone), so resuming a run
needs only the iteration. Milestones and warmup are fractions of `max_iter`, so changing
``trainer.max_iter`` on the command line stretches the whole schedule with it (recipes pass
``max_iter="${trainer.max_iter}"``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from detrun.errors import UserError


class ScheduleError(UserError, ValueError):
    """A schedule argument out of range; the message names it and the accepted values."""


class WarmupSchedule:
    """Base: ``multiplier(it) = warmup(it) * value(it / max_iter)``.

    Args:
        max_iter: total iterations of the run.
        warmup_length: fraction of `max_iter` over which the multiplier ramps linearly from
            `warmup_factor` to 1 (times the schedule's value); 0 disables warmup. Goyal et al.
            2017 (arXiv:1706.02677) introduced the linear warmup for large-batch SGD.
        warmup_factor: multiplier at iteration 0.
    """

    def __init__(self, *, max_iter: int, warmup_length: float = 0.0, warmup_factor: float = 0.001):
        if max_iter <= 0:
            raise ScheduleError(f"lr_scheduler.max_iter must be positive, got {max_iter}")
        if not 0.0 <= warmup_length < 1.0:
            raise ScheduleError(
                f"lr_scheduler.warmup_length is a fraction of max_iter in [0, 1), got {warmup_length} "
                f"(for 1000 warmup iterations of {max_iter}, write {1000 / max_iter:.4g})"
            )
        self.max_iter = max_iter
        self.warmup_length = warmup_length
        self.warmup_factor = warmup_factor

    def value(self, progress: float) -> float:
        """The schedule without warmup at `progress` = iteration / max_iter in [0, 1]."""
        raise NotImplementedError

    def __call__(self, iteration: int) -> float:
        """Multiplier of the base lr for 0-based `iteration`."""
        progress = min(iteration / self.max_iter, 1.0)
        multiplier = self.value(progress)
        if progress < self.warmup_length:
            alpha = progress / self.warmup_length
            multiplier *= self.warmup_factor * (1.0 - alpha) + alpha
        return multiplier


class WarmupMultiStepLR(WarmupSchedule):
    """Multiply the lr by `gamma` at each milestone, after a linear warmup.

    Args:
        milestones: increasing fractions of `max_iter` in (0, 1); Detectron2's 1x schedule
            (steps 60k and 80k of 90k) is ``[0.667, 0.889]``.
        gamma: factor applied at each milestone.
        max_iter, warmup_length, warmup_factor: see `WarmupSchedule`.
    """

    def __init__(self, *, max_iter: int, milestones: Sequence[float] = (0.667, 0.889), gamma: float = 0.1,
                 warmup_length: float = 0.0, warmup_factor: float = 0.001):
        super().__init__(max_iter=max_iter, warmup_length=warmup_length, warmup_factor=warmup_factor)
        milestones = list(milestones)
        if any(not 0.0 < m < 1.0 for m in milestones) or milestones != sorted(milestones):
            raise ScheduleError(
                f"lr_scheduler.milestones are increasing fractions of max_iter in (0, 1), got {milestones} "
                f"(for steps at iterations 60000, 80000 of {max_iter}, write "
                f"[{60000 / max_iter:.3g}, {80000 / max_iter:.3g}])"
            )
        self.milestones = milestones
        self.gamma = gamma

    def value(self, progress: float) -> float:
        passed = sum(progress >= m for m in self.milestones)
        return self.gamma**passed


class WarmupCosineLR(WarmupSchedule):
    """Half-cosine decay from 1 to `end_value` over the run, after a linear warmup
    (Loshchilov & Hutter 2017, arXiv:1608.03983, without restarts).

    Args:
        end_value: multiplier at the last iteration.
        max_iter, warmup_length, warmup_factor: see `WarmupSchedule`.
    """

    def __init__(self, *, max_iter: int, end_value: float = 0.0, warmup_length: float = 0.0,
                 warmup_factor: float = 0.001):
        super().__init__(max_iter=max_iter, warmup_length=warmup_length, warmup_factor=warmup_factor)
        self.end_value = end_value

    def value(self, progress: float) -> float:
        return self.end_value + (1.0 - self.end_value) * 0.5 * (1.0 + math.cos(math.pi * progress))
