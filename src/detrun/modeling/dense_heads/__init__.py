"""Heads of dense (one-stage) detectors: per-anchor predictions at every cell of every level."""
from .retinanet_head import RetinaNetHead

__all__ = ["RetinaNetHead"]
