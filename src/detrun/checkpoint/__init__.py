"""Checkpoints: load any supported weight format into a model (detrun, Detectron2, torchvision);
write training checkpoints atomically (`io`)."""
from .formats import ConvertedWeights, convert_checkpoint
from .io import load_training_checkpoint, save_atomic
from .load import LoadReport, load_report, load_weights
from .reading import CheckpointError, read_checkpoint
from .safe_pickle import UnsafePickleError, safe_load_pickle

__all__ = [
    "CheckpointError",
    "ConvertedWeights",
    "LoadReport",
    "UnsafePickleError",
    "convert_checkpoint",
    "load_report",
    "load_training_checkpoint",
    "load_weights",
    "read_checkpoint",
    "safe_load_pickle",
    "save_atomic",
]
