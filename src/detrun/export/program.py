"""`torch.export` of a detector's tensor-only inference core, with a dynamic image size."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.errors import UserError
from detrun.modeling.meta_arch import MetaArchitecture

# Image sides the exported program accepts, in multiples of the backbone's size divisibility
# (a 1-cell top level would be specialised by torch.export's symbolic shapes, so 2 at least).
MIN_BLOCKS = 2
MAX_SIDE = 4096


class ExportError(UserError):
    """The model can't be exported as asked (no tensor-only core, a missing optional package...)."""


class ExportableModel(nn.Module):
    """A detector as an exportable module: raw padded images in, the core's tensors out.

    ``forward(images, image_sizes)``: `images` float32 Tensor[N, C, H, W] in 0-255 pixel units and
    the model's `input_format` channel order, padded bottom/right to H, W multiples of the
    backbone's size divisibility (any padding values); `image_sizes` int64 Tensor[N, 2], each
    image's (height, width) before padding. Returns `MetaArchitecture.inference_tensors`' dict
    (``boxes``, ``scores``, ``classes``, ``counts``, ``mask_probs``, ``keypoint_heatmaps``...) in
    network pixels; `detrun.export.results_from_outputs` turns it into the eager model's results.
    """

    def __init__(self, model: MetaArchitecture):
        super().__init__()
        check_exportable(model)
        self.model = model.eval()

    def forward(self, images: Tensor, image_sizes: Tensor) -> dict[str, Tensor]:
        x = self.model.normalize_padded(images, image_sizes)
        return self.model.inference_tensors(x, image_sizes)


def check_exportable(model: nn.Module) -> None:
    """Raise ExportError unless `model` is a MetaArchitecture whose eager inference is its
    tensor-only core (a subclass that overrides `raw_inference` alone would export something else)."""
    if not isinstance(model, MetaArchitecture):
        raise ExportError(f"only detrun meta-architectures export, got {type(model).__name__}")
    cls = type(model)
    core = next(c for c in cls.__mro__ if "inference_tensors" in vars(c))
    eager = next(c for c in cls.__mro__ if "raw_inference" in vars(c))
    if core is MetaArchitecture:
        raise ExportError(f"{cls.__name__} has no tensor-only inference core (inference_tensors): it can't be "
                          "exported; see MetaArchitecture's docstring")
    if eager is not MetaArchitecture and eager is not core and issubclass(eager, core):
        raise ExportError(f"{cls.__name__} overrides raw_inference but not inference_tensors: an export of "
                          f"{core.__name__}'s core would not give its eager outputs")
    missing = getattr(model, "tensor_core_missing", lambda: None)()
    if missing is not None:
        raise ExportError(f"{cls.__name__} can't be exported: {missing}")


def padding_of(model: MetaArchitecture) -> tuple[int, int]:
    """(size divisibility, square size) of the model's inputs, from its backbone."""
    constraints = getattr(model.backbone, "padding_constraints", {}) or {}
    return max(int(constraints.get("size_divisibility", 0) or 0), 1), int(constraints.get("square_size", 0) or 0)


def class_count(model: nn.Module) -> int | None:
    """The number of classes the model predicts: the first ``num_classes`` among its modules
    (the model's own, else its ROI or dense heads'); None if none has one."""
    return next((int(m.num_classes) for m in model.modules() if isinstance(getattr(m, "num_classes", None), int)), None)


def example_inputs(model: MetaArchitecture, height: int, width: int, batch: int = 1,
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random raw images (batch, C, Hp, Wp) padded as the model wants, and their sizes (height, width)."""
    divisibility, square = padding_of(model)
    if square:
        hp = wp = square
    else:
        hp, wp = (-(-s // divisibility) * divisibility for s in (height, width))
    g = torch.Generator().manual_seed(seed)
    channels = model.pixel_mean.shape[0]
    images = torch.zeros(batch, channels, hp, wp)
    images[:, :, :height, :width] = torch.randint(0, 256, (batch, channels, height, width), generator=g).float()
    sizes = torch.tensor([[height, width]] * batch, dtype=torch.int64)
    return images.to(model.device), sizes.to(model.device)


def dynamic_shapes(model: MetaArchitecture, max_side: int = MAX_SIDE) -> dict:
    """torch.export's dynamic shapes of `ExportableModel`'s inputs: the padded height and width are
    free multiples of the size divisibility (static for a square-input backbone); the batch size is
    static."""
    divisibility, square = padding_of(model)
    if square:
        return {"images": None, "image_sizes": None}
    blocks = max(max_side // divisibility, MIN_BLOCKS + 1)
    h = torch.export.Dim("height_blocks", min=MIN_BLOCKS, max=blocks)
    w = torch.export.Dim("width_blocks", min=MIN_BLOCKS, max=blocks)
    return {"images": {2: divisibility * h, 3: divisibility * w}, "image_sizes": None}


def export_program(model: MetaArchitecture, *, height: int = 256, width: int = 320, batch: int = 1,
                   dynamic: bool = True) -> torch.export.ExportedProgram:
    """`torch.export.export` of ``ExportableModel(model)``, traced with an example of `batch` images
    of height x width (any sizes the model accepts: they only steer tracing), dynamic in the padded
    image size unless `dynamic` is False. Its ``module()(images, image_sizes)`` gives the core's
    outputs for any image size (see `ExportableModel`)."""
    module = ExportableModel(model)
    args = example_inputs(model, height, width, batch)
    shapes = dynamic_shapes(model) if dynamic else None
    # Size-oblivious sizes: a feature level of one row or column is valid input, not a case to
    # specialise on (by default the contiguity checks of every strided conv would add "!= 1"
    # guards, and a 128-pixel side would fail RetinaNet's P7). A level of 1 x 1 cells still
    # fails a runtime check of the program: images that small are refused.
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
        return torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
