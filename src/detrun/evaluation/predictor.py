"""`Predictor`: a recipe's trained model on single images, as ``task=predict`` runs it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image as PILImage

from detrun.config import compose, instantiate
from detrun.data.image_io import decode_image, read_image
from detrun.errors import UserError
from detrun.export.compile import build_model

from .evaluators import evaluator_dataset_name
from .inference import INFERENCE_AMP_KEY, inference_amp, inference_autocast
from .pictures import SCORE_THRESHOLD, draw_output, drawing_style
from .trained_weights import check_trained_predictors

logger = logging.getLogger(__name__)

# Weights files with this suffix run under onnxruntime (`detrun.export.OnnxModel`).
ONNX_SUFFIX = ".onnx"
# What a Predictor takes: an image file's path, a PIL image, or a uint8 array [H, W, 3].
ImageInput = Union[str, Path, PILImage.Image, np.ndarray]


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
        cfg: a composed recipe with ``model`` and ``dataloader.test.mapper``, or a recipe's name,
            file or saved ``recipe.yaml`` (composed without overrides).
        device: where the model runs; default a GPU if ``trainer.gpus`` > 0 and one is available, else the CPU.
        amp: overrides ``trainer.inference_amp``: off | auto | bf16 | fp16 (eager backend).
        weights: overrides ``model.weights`` (a ``.onnx`` file chooses onnxruntime).

    Raises:
        UntrainedPredictorError: ``model.weights`` leaves predictor layers untrained.
        UserError: a bad precision or compile value; an ONNX file that is missing, lacks the
            ``detrun[export]`` extra or was exported from another model than the recipe's.
    """

    def __init__(self, cfg: DictConfig | str, *, device: str | torch.device | None = None, amp: str | None = None,
                 weights: str | Path | None = None):
        if not isinstance(cfg, DictConfig):
            cfg = compose(str(cfg))  # a recipe name, recipe file or saved recipe.yaml
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
        self.cfg = cfg

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, weights: str = "model_final.pth", **kwargs) -> "Predictor":
        """The Predictor of a training run: its saved ``recipe.yaml`` with its `weights` file
        (relative to `run_dir`); `kwargs` as for the constructor."""
        run_dir = Path(run_dir).expanduser()
        for name in ("recipe.yaml", weights):
            if not (run_dir / name).is_file():
                raise UserError(f"{run_dir / name} does not exist: give the folder a training run wrote "
                                "(it holds recipe.yaml and model_final.pth)")
        return cls(compose(str(run_dir / "recipe.yaml")), weights=run_dir / weights, **kwargs)

    def __call__(self, image: ImageInput, *, channel_order: str | None = None) -> dict:
        """The model's output for one image: ``{"instances": Instances}`` (``pred_boxes``,
        ``scores``, ``pred_classes``, ``pred_masks`` / ``pred_keypoints`` as the model predicts),
        ``"sem_seg"`` and ``"panoptic_seg"`` (ids, segments) where the model makes them, in
        pixels of the given image, on the CPU.

        Args:
            image: an image file's path, a PIL image, or a uint8 array [H, W, 3].
            channel_order: "RGB" or "BGR", the order of an array's channels; default the
                model's input format (``dataloader.test.mapper.image_format``), as Detectron2's
                predictor assumes. Paths and PIL images carry their own.
        """
        inputs = [self.mapper(self._record(image, channel_order))]
        with torch.no_grad(), self._autocast:
            if self.onnx is None:
                output = self.model(inputs)[0]
            else:
                from detrun.export import run_exported

                output = run_exported(self.model, self.onnx, inputs)[0]
        return {key: (value[0].to("cpu"), value[1]) if key == "panoptic_seg" else value.to("cpu")
                for key, value in output.items()}

    def draw(self, image: ImageInput, *, channel_order: str | None = None,
             score_threshold: float = SCORE_THRESHOLD) -> PILImage.Image:
        """The image (RGB) with the model's predictions drawn as ``task=predict`` draws them:
        instances scoring at least `score_threshold` with their class names (from the recipe's
        evaluator data set), semantic and panoptic results tinted."""
        output = self(image, channel_order=channel_order)
        rgb = self._pixels(image, channel_order, "RGB")
        style = drawing_style(evaluator_dataset_name(self.cfg))
        return draw_output(rgb, output, style, score_threshold)

    def _record(self, image: ImageInput, channel_order: str | None) -> dict:
        if isinstance(image, (str, Path)):
            return {"file_name": str(image), "image_id": Path(image).name}
        return {"image": self._pixels(image, channel_order, self.mapper.image_format),
                "file_name": "<in-memory image>", "image_id": "<in-memory image>"}

    def _pixels(self, image: ImageInput, channel_order: str | None, image_format: str) -> np.ndarray:
        """`image` as uint8 [H, W, C] in `image_format` ("RGB", "BGR" or "L")."""
        if isinstance(image, (str, Path)):
            return read_image(str(image), image_format)
        if isinstance(image, PILImage.Image):
            return decode_image(image, image_format)
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise UserError(f"Predictor takes a uint8 array of shape [H, W, 3]; got {array.dtype} {list(array.shape)} "
                            "(or pass a file path or a PIL image)")
        order = channel_order or self.mapper.image_format
        if order not in ("RGB", "BGR"):
            raise UserError(f"channel_order={order!r}: give the array's channel order, 'RGB' or 'BGR'")
        rgb = array if order == "RGB" else array[:, :, ::-1]
        return decode_image(PILImage.fromarray(np.ascontiguousarray(rgb)), image_format)
