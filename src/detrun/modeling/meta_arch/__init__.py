"""Meta-architectures: whole detectors assembled from a backbone and heads."""
from .base import MetaArchitecture
from .rcnn import GeneralizedRCNN

__all__ = ["GeneralizedRCNN", "MetaArchitecture"]
