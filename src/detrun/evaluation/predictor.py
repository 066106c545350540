"""`Predictor`: a recipe's trained model on single images, as ``task=predict`` runs it."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from detrun.config import instantiate

from .inference import INFERENCE_AMP_KEY, inference_amp, inference_autocast
from .trained_weights import check_trained_predictors


class Predictor:
    """The recipe's model (with ``model.weights``) in eval mode, its test mapper and its inference
    precision (``trainer.inference_amp``), for one image at a time::

        cfg = compose("shapes_mask_rcnn", ["model.weights=outputs/.../model_final.pth", "trainer.inference_amp=bf16"])
        instances = Predictor(cfg)("image.png")["instances"]

    Args:
        cfg: a composed recipe with ``model`` and ``dataloader.test.mapper``.
        device: where the model runs; default a GPU if ``trainer.gpus`` > 0 and one is available, else the CPU.
        amp: overrides ``trainer.inference_amp``: off | auto | bf16 | fp16.

    Raises:
        UntrainedPredictorError: ``model.weights`` leaves predictor layers untrained.
        UserError: a bad precision value.
    """

    def __init__(self, cfg: DictConfig, *, device: str | torch.device | None = None, amp: str | None = None):
        if device is None:
            use_gpu = int(OmegaConf.select(cfg, "trainer.gpus", default=0) or 0) > 0 and torch.cuda.is_available()
            device = "cuda" if use_gpu else "cpu"
        self.amp = inference_amp(cfg) if amp is None else amp
        self.model = instantiate(cfg.model).to(device).eval()
        self._autocast = inference_autocast(self.model, self.amp, key=INFERENCE_AMP_KEY)  # validates amp
        check_trained_predictors(self.model, cfg, "predict")
        self.mapper = instantiate(cfg.dataloader.test.mapper)

    def __call__(self, image: str | Path) -> dict:
        """The model's output for the image file: ``{"instances": Instances}`` (``pred_boxes``,
        ``scores``, ``pred_classes``, ``pred_masks`` / ``pred_keypoints`` as the model predicts),
        ``"sem_seg"`` and ``"panoptic_seg"`` (ids, segments) where the model makes them, in
        pixels of the file's image, on the CPU."""
        inputs = [self.mapper({"file_name": str(image), "image_id": Path(image).name})]
        with torch.no_grad(), self._autocast:
            output = self.model(inputs)[0]
        return {key: (value[0].to("cpu"), value[1]) if key == "panoptic_seg" else value.to("cpu")
                for key, value in output.items()}
