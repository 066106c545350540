"""`Keypoints`: K named points per object with a visibility flag (COCO convention)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


class Keypoints:
    """N objects × K keypoints as a float32 Tensor[N, K, 3] = (x, y, visibility).

    x, y are absolute pixels (continuous coordinates, as COCO stores them); visibility follows
    COCO: 0 = not labelled, 1 = labelled but hidden, 2 = labelled and visible.
    """

    def __init__(self, keypoints: Tensor | np.ndarray | Sequence):
        device = keypoints.device if isinstance(keypoints, Tensor) else torch.device("cpu")
        tensor = torch.as_tensor(keypoints, dtype=torch.float32, device=device)
        if tensor.dim() != 3 or tensor.shape[2] != 3:
            raise ValueError(f"Keypoints needs a [N, K, 3] tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def __len__(self) -> int:
        return self.tensor.size(0)

    def to(self, *args, **kwargs) -> Keypoints:
        return Keypoints(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item) -> Keypoints:
        if isinstance(item, int):
            return Keypoints(self.tensor[item].unsqueeze(0))
        return Keypoints(self.tensor[item])

    def __repr__(self) -> str:
        return f"Keypoints(num_instances={len(self)}, num_keypoints={self.tensor.shape[1]})"

    @staticmethod
    def cat(keypoints_list: Sequence[Keypoints]) -> Keypoints:
        return Keypoints(torch.cat([k.tensor for k in keypoints_list], dim=0))

    def to_heatmap(self, boxes: Tensor, heatmap_size: int) -> tuple[Tensor, Tensor]:
        """Keypoint-head targets: each keypoint's cell in an S×S grid laid over its object's box.

        Args:
            boxes: Tensor[N, 4] XYXY pixels, one per object.
            heatmap_size: S.
        Returns:
            (heatmaps int64 Tensor[N, K] = flat cell index y * S + x, valid bool Tensor[N, K]):
            valid is False for unlabelled keypoints and keypoints outside their box.
        """
        if boxes.numel() == 0:
            n, k = self.tensor.shape[:2]
            return boxes.new_zeros((n, k), dtype=torch.int64), boxes.new_zeros((n, k), dtype=torch.bool)
        kp = self.tensor.to(boxes.device)
        offset_x, offset_y = boxes[:, 0:1], boxes[:, 1:2]
        scale_x = heatmap_size / (boxes[:, 2:3] - boxes[:, 0:1]).clamp(min=1e-6)
        scale_y = heatmap_size / (boxes[:, 3:4] - boxes[:, 1:2]).clamp(min=1e-6)
        x, y = kp[..., 0], kp[..., 1]
        # A keypoint exactly on the right/bottom edge belongs to the last cell, not outside.
        on_right = x == boxes[:, 2:3]
        on_bottom = y == boxes[:, 3:4]
        gx = ((x - offset_x) * scale_x).floor().long()
        gy = ((y - offset_y) * scale_y).floor().long()
        gx[on_right] = heatmap_size - 1
        gy[on_bottom] = heatmap_size - 1
        inside = (gx >= 0) & (gy >= 0) & (gx < heatmap_size) & (gy < heatmap_size)
        valid = inside & (kp[..., 2] > 0)
        heatmaps = torch.where(valid, gy * heatmap_size + gx, torch.zeros_like(gx))
        return heatmaps, valid
