"""detrun: Python-native object detection and segmentation."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `detrun.Predictor` without importing torch-heavy modules on `import detrun`
    if name == "Predictor":
        from detrun.evaluation import Predictor

        return Predictor
    raise AttributeError(f"module 'detrun' has no attribute {name!r}")
