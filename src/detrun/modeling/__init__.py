"""Backbones, proposal generators, ROI heads and meta-architectures."""
from .shape_spec import ShapeSpec

__all__ = ["ShapeSpec"]
