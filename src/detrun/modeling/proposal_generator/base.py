"""Interface every proposal generator (RPN, ...) implements."""
from __future__ import annotations

from torch import Tensor, nn

from detrun.structures import ImageList, Instances


class ProposalGenerator(nn.Module):
    """Base class: `forward(images, features, gt_instances) -> (proposals, losses)`.

    Subclasses return one `Instances` per image with `proposal_boxes: Boxes` and
    `objectness_logits: float Tensor[N]`, sorted by decreasing objectness, and in training a
    dict of scalar `loss_*` tensors (an empty dict at inference).

    For `torch.export` (`detrun.export`), a generator also implements the tensor-only inference
    ``predict_proposals(images: Tensor[N, C, H, W], features, image_sizes: int64 Tensor[N, 2]) ->
    list[Tensor[R_i, 4]]`` (as `RPN` does); `GeneralizedRCNN` uses it when present.
    """

    def forward(
        self, images: ImageList, features: dict[str, Tensor], gt_instances: list[Instances] | None = None
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")
