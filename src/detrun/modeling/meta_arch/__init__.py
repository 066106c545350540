"""Meta-architectures: whole detectors assembled from a backbone and heads."""
from .base import MetaArchitecture
from .dense_detector import DenseDetector, decode_dense_detections
from .panoptic_fpn import PanopticFPN, combine_semantic_and_instance_outputs
from .rcnn import GeneralizedRCNN
from .retinanet import RetinaNet
from .semantic_seg import SemanticSegmentor

__all__ = ["DenseDetector", "GeneralizedRCNN", "MetaArchitecture", "PanopticFPN", "RetinaNet", "SemanticSegmentor",
           "combine_semantic_and_instance_outputs", "decode_dense_detections"]
