"""Meta-architectures: whole detectors assembled from a backbone and heads."""
from .base import MetaArchitecture
from .dense_detector import DenseDetector, decode_dense_detections
from .rcnn import GeneralizedRCNN
from .retinanet import RetinaNet

__all__ = ["DenseDetector", "GeneralizedRCNN", "MetaArchitecture", "RetinaNet", "decode_dense_detections"]
