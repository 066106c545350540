"""Learning-rate schedule nodes (multipliers of the optimizer's lr, see `detrun.engine.schedules`).

Milestones and warmup are fractions of ``trainer.max_iter``, so ``trainer.max_iter=N`` on the
command line rescales the whole schedule.
"""
from detrun.config import L
from detrun.engine.schedules import WarmupCosineLR, WarmupMultiStepLR

# Detectron2's 1x: decay by 10 at 60k and 80k of 90k, 1000 warmup iterations.
multistep = L(WarmupMultiStepLR)(max_iter="${trainer.max_iter}", milestones=[0.667, 0.889], gamma=0.1,
                                 warmup_length=0.011, warmup_factor=0.001)

cosine = L(WarmupCosineLR)(max_iter="${trainer.max_iter}", end_value=0.0, warmup_length=0.011, warmup_factor=0.001)
