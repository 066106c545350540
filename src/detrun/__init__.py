"""detrun: Python-native object detection and segmentation."""

__version__ = "0.1.0"
