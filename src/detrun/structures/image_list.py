"""`ImageList`: a batch of differently sized images padded into one tensor, remembering each size."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class ImageList:
    """Images padded (bottom/right) into Tensor[N, C, Hp, Wp]; ``image_sizes[i]`` = (h, w) before padding."""

    def __init__(self, tensor: Tensor, image_sizes: list[tuple[int, int]]):
        if tensor.dim() < 3 or len(image_sizes) != tensor.shape[0]:
            raise ValueError(
                f"ImageList: tensor of shape {tuple(tensor.shape)} does not match {len(image_sizes)} image sizes"
            )
        self.tensor = tensor
        self.image_sizes = [(int(h), int(w)) for h, w in image_sizes]

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> Tensor:
        """Image `idx` without its padding, Tensor[C, h, w] (a view)."""
        h, w = self.image_sizes[idx]
        return self.tensor[idx, ..., :h, :w]

    def to(self, *args, **kwargs) -> ImageList:
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: Sequence[Tensor], size_divisibility: int = 0, pad_value: float = 0.0, square_size: int = 0
    ) -> ImageList:
        """Pad images Tensor[C, H_i, W_i] (same C, dtype, device) to a common size and stack them.

        The padded size is the largest H and W in the batch, rounded up to a multiple of
        `size_divisibility` when it is > 0 (backbones with stride-32 outputs need 32). With
        `square_size` > 0 every image is padded to square_size x square_size instead (images
        larger than that are refused).
        """
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one image")
        for t in tensors:
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"ImageList.from_tensors: images differ in leading dims ({tuple(t.shape)} vs {tuple(tensors[0].shape)})"
                )
        image_sizes = [(t.shape[-2], t.shape[-1]) for t in tensors]
        max_h = max(h for h, _ in image_sizes)
        max_w = max(w for _, w in image_sizes)
        if square_size > 0:
            if max_h > square_size or max_w > square_size:
                raise ValueError(f"ImageList.from_tensors: an image of {max_h} x {max_w} pixels does not fit the "
                                 f"backbone's square input of {square_size} x {square_size}; resize it first")
            max_h = max_w = square_size
        elif size_divisibility > 1:
            stride = size_divisibility
            max_h = (max_h + stride - 1) // stride * stride
            max_w = (max_w + stride - 1) // stride * stride
        if len(tensors) == 1:
            # One image: pad without an extra copy into a preallocated batch.
            h, w = image_sizes[0]
            padded = F.pad(tensors[0], [0, max_w - w, 0, max_h - h], value=pad_value).unsqueeze(0)
            return ImageList(padded.contiguous(), image_sizes)
        batch = tensors[0].new_full((len(tensors), *tensors[0].shape[:-2], max_h, max_w), pad_value)
        for img, dst in zip(tensors, batch):
            dst[..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batch, image_sizes)
