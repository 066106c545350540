"""`Predictor`: a recipe's trained model on single images, as ``task=predict`` runs it."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from detrun.config import instantiate
from detrun.export.compile import build_model

from .inference import INFERENCE_AMP_KEY, inference_amp, inference_autocast
from .trained_weights import check_trained_predictors

logger = logging.getLogger(__name__)

# Weights files with this suffix run under onnxruntime (`detrun.export.OnnxModel`).
ONNX_SUFFIX = ".onnx"


class Predictor:
    """The recipe's model (with ``model.weights``) in eval mode, its test mapper and its inference
    precision (``trainer.inference_amp``), for one image at a time::

        cfg = compose("shapes_mask_rcnn", ["model.weights=outputs/.../model_final.pth", "trainer.inference_amp=bf16"])
        instances = Predictor(cfg)("image.png")["instances"]

    Two backends behind the same call:

    - eager PyTorch (any weights file `load_weights` reads), its backbone and heads compiled with
      ``torch.compile`` when ``trainer.inference_compile`` asks for it (`detrun.export.compile`);
    - onnxruntime, when the weights are an ONNX file written by ``task=export format=onnx``
      (``model.weights=model.onnx``): the file computes the tensor-only core on the padded image;
      the recipe's mapper (resizing, channel order) prepares the image and the recipe's model,
      built without weights, supplies the layers above the core (Instances, mask pasting at the
      original size), as in eager inference. The file's metadata (input format, padding, class
      count) must match the recipe's model. It runs on the CPU, in float32.

    Args:
        cfg: a composed recipe with ``model`` and ``dataloader.test.mapper``.
        device: where the model runs; default a GPU if ``trainer.gpus`` > 0 and one is available, else the CPU.
        amp: overrides ``trainer.inference_amp``: off | auto | bf16 | fp16 (eager backend).
        weights: overrides ``model.weights`` (a ``.onnx`` file chooses onnxruntime).

    Raises:
        UntrainedPredictorError: ``model.weights`` leaves predictor layers untrained.
        UserError: a bad precision or compile value; an ONNX file that is missing, lacks the
            ``detrun[export]`` extra or was exported from another model than the recipe's.
    """

    def __init__(self, cfg: DictConfig, *, device: str | torch.device | None = None, amp: str | None = None,
                 weights: str | Path | None = None):
        weights = str(weights) if weights is not None else OmegaConf.select(cfg, "model.weights")
        self.onnx = None
        if weights and Path(weights).suffix.lower() == ONNX_SUFFIX:
            from detrun.export import OnnxModel

            self.onnx = OnnxModel(Path(weights).expanduser())
            self.amp = "off"  # the file computes in float32
            self.model = build_model(cfg, key=None, weights=None).eval()  # the layers above the core
            self.onnx.check_matches(self.model)
        else:
            if device is None:
                use_gpu = int(OmegaConf.select(cfg, "trainer.gpus", default=0) or 0) > 0 and torch.cuda.is_available()
                device = "cuda" if use_gpu else "cpu"
            self.amp = inference_amp(cfg) if amp is None else amp
            self.model = build_model(cfg, **({"weights": weights} if weights else {})).to(device).eval()
            check_trained_predictors(self.model, cfg, "predict")
        self._autocast = inference_autocast(self.model, self.amp, key=INFERENCE_AMP_KEY)  # validates amp
        self.mapper = instantiate(cfg.dataloader.test.mapper)

    def __call__(self, image: str | Path) -> dict:
        """The model's output for the image file: ``{"instances": Instances}`` (``pred_boxes``,
        ``scores``, ``pred_classes``, ``pred_masks`` / ``pred_keypoints`` as the model predicts),
        ``"sem_seg"`` and ``"panoptic_seg"`` (ids, segments) where the model makes them, in
        pixels of the file's image, on the CPU."""
        inputs = [self.mapper({"file_name": str(image), "image_id": Path(image).name})]
        with torch.no_grad(), self._autocast:
            if self.onnx is None:
                output = self.model(inputs)[0]
            else:
                from detrun.export import run_exported

                output = run_exported(self.model, self.onnx, inputs)[0]
        return {key: (value[0].to("cpu"), value[1]) if key == "panoptic_seg" else value.to("cpu")
                for key, value in output.items()}
