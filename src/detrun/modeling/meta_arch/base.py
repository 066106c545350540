"""The contract of a whole detector: what the engine, evaluator and CLI may rely on."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch
from torch import nn

from detrun.checkpoint import load_weights


class MetaArchitecture(nn.Module, metaclass=ABCMeta):
    """A detector called on a batch of mapper outputs.

    ``model(batched_inputs: list[dict])``, each dict as the data mapper makes it
    (``"image"``: uint8 Tensor[3, H, W], ``"instances"`` in training, ``"height"``/``"width"``
    of the original image):

    - in training mode, returns ``dict[str, Tensor]`` of scalar losses named ``loss_*``
      (their sum is what the engine minimises);
    - in eval mode, returns one ``{"instances": Instances}`` per input, at the input's
      ``height`` x ``width``, with ``pred_boxes``, ``scores``, ``pred_classes`` (0..C-1) and,
      depending on the model, ``pred_masks`` / ``pred_keypoints``.

    Subclasses accept ``weights: str | None`` and call `load_initial_weights` at the end of
    their ``__init__``, so ``model.weights=PATH`` in a recipe loads any supported checkpoint.
    """

    @abstractmethod
    def forward(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor] | list[dict[str, Any]]:
        """Losses (training) or per-image results (eval); see the class docstring."""

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters/buffers (inputs are moved there)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def load_initial_weights(self, weights: str | None) -> None:
        """Load `weights` (any format `detrun.checkpoint.load_weights` reads) unless it is None/empty."""
        if weights:
            load_weights(self, weights)
