"""From an exported model's tensors back to the eager model's results."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from detrun.modeling.meta_arch import MetaArchitecture

from .program import padding_of


def pad_images(model: MetaArchitecture, images: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Raw images Tensor[C, H_i, W_i] (e.g. the mapper's ``"image"``) -> the exported model's inputs:
    float32 Tensor[N, C, Hp, Wp] padded bottom/right as the model pads (zeros; the model masks the
    padding) and int64 Tensor[N, 2] of (height, width)."""
    divisibility, square = padding_of(model)
    sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in images]
    if square:
        hp = wp = square
    else:
        hp = -(-max(h for h, _ in sizes) // divisibility) * divisibility
        wp = -(-max(w for _, w in sizes) // divisibility) * divisibility
    batch = torch.zeros((len(images), images[0].shape[0], hp, wp), dtype=torch.float32)
    for x, dst in zip(images, batch):
        dst[:, : x.shape[-2], : x.shape[-1]] = x.float()
    return batch, torch.tensor(sizes, dtype=torch.int64).view(-1, 2)


def results_from_outputs(model: MetaArchitecture, outputs: dict[str, Tensor], batched_inputs: list[dict[str, Any]],
                         image_sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """What ``model(batched_inputs)`` returns in eval mode, from the exported core's `outputs` for
    the same inputs (`image_sizes`: each image's size before padding): the Instances layer
    (`results_from_tensors`), then `postprocess` (masks pasted, rescaled to each input's size)."""
    outputs = {name: value.to(model.device) for name, value in outputs.items()}
    results = model.results_from_tensors(outputs, image_sizes)
    return model.postprocess(results, batched_inputs, image_sizes)


def run_exported(model: MetaArchitecture, runner: Callable[[Tensor, Tensor], dict[str, Tensor]],
                 batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eval-mode results for `batched_inputs` (mapper outputs) computed by `runner`, an exported
    program's module or an `OnnxModel` (one call for the whole batch: its size must be the one
    exported), with `model` (the same recipe and weights) for the layers above the core."""
    images, sizes = pad_images(model, [x["image"] for x in batched_inputs])
    outputs = runner(images.to(model.device), sizes.to(model.device))
    return results_from_outputs(model, outputs, batched_inputs, [tuple(s) for s in sizes.tolist()])
