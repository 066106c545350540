"""Mask head: FCN on pooled mask features, its loss and inference."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detrun.structures import Instances

from ..backbone.norm import Conv2dNorm


def mask_rcnn_loss(pred_mask_logits: Tensor, instances: list[Instances]) -> Tensor:
    """Mean per-pixel binary cross-entropy of each foreground proposal's gt-class mask.

    Args:
        pred_mask_logits: Tensor[R, K, M, M], K = C or 1 (class-agnostic), for the foreground
            proposals of all images concatenated.
        instances: per image, foreground proposals with `proposal_boxes`, `gt_classes` and
            `gt_masks` (anything with ``crop_and_resize(boxes, M)``); together R of them.

    Returns:
        Scalar; 0 (attached to the logits) if there are no foreground proposals.
    """
    mask_size = pred_mask_logits.shape[-1]
    targets = [
        p.gt_masks.crop_and_resize(p.proposal_boxes.tensor, mask_size).to(pred_mask_logits.device)
        for p in instances
        if len(p) > 0
    ]
    if not targets:
        return pred_mask_logits.sum() * 0
    targets = torch.cat(targets).float()
    if pred_mask_logits.shape[1] == 1:
        logits = pred_mask_logits[:, 0]
    else:
        classes = torch.cat([p.gt_classes for p in instances])
        logits = pred_mask_logits[torch.arange(len(classes), device=classes.device), classes]
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="mean")


def mask_rcnn_inference(pred_mask_logits: Tensor, pred_instances: list[Instances]) -> None:
    """Set `pred_masks` (float probabilities Tensor[N_i, 1, M, M]) on each image's detections.

    Args:
        pred_mask_logits: Tensor[sum N_i, 1, M, M], the logits of each detection's predicted
            class (or of the class-agnostic mask), images concatenated.
        pred_instances: per image, the detections.
    """
    probs = pred_mask_logits.float().sigmoid().split([len(p) for p in pred_instances])
    for p, prob in zip(pred_instances, probs):
        p.pred_masks = prob


class MaskRCNNConvUpsampleHead(nn.Module):
    """Conv 3x3 (+ norm) + ReLU layers, a 2x transposed conv + ReLU, then 1x1 conv to per-class mask logits.

    Parameter names follow Detectron2 (`mask_fcn1..`, `deconv`, `predictor`).

    Args:
        in_channels: channels of the pooled features (the FPN width).
        num_classes: number of foreground classes C (one mask channel each).
        conv_dims: widths of the conv layers followed by the width of the transposed conv
            (Detectron2: ``[256] * 5`` = 4 convs + deconv).
        conv_norm: norm after each conv ("", "BN", "SyncBN", "FrozenBN", "GN").
        cls_agnostic_mask: predict one mask for all classes.
        loss_weight: multiplier of `loss_mask`.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        conv_dims: list[int],
        conv_norm: str = "",
        cls_agnostic_mask: bool = False,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if len(conv_dims) == 0:
            raise ValueError("MaskRCNNConvUpsampleHead needs conv_dims with at least the transposed conv's width")
        self.loss_weight = loss_weight
        channels = in_channels
        self.convs = []
        for k, dim in enumerate(conv_dims[:-1], start=1):
            conv = Conv2dNorm(channels, dim, kernel_size=3, padding=1, norm=conv_norm)
            self.add_module(f"mask_fcn{k}", conv)
            self.convs.append(conv)
            channels = dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dims[-1], kernel_size=2, stride=2)
        self.predictor = nn.Conv2d(conv_dims[-1], 1 if cls_agnostic_mask else num_classes, kernel_size=1)
        # Kaiming (fan_out) for the FCN, small normal for the predictor (Detectron2's init).
        for layer in self.convs + [self.deconv]:
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def layers(self, x: Tensor) -> Tensor:
        """Pooled features Tensor[R, C, M/2, M/2] -> upsampled features Tensor[R, D, M, M]."""
        # In-place ReLUs: conv backward needs its input, not its output.
        for conv in self.convs:
            x = F.relu(conv(x), inplace=True)
        return F.relu(self.deconv(x), inplace=True)

    def class_logits(self, x: Tensor, classes: Tensor) -> Tensor:
        """Logits of one class per mask, Tensor[R, 1, M, M], from features `x` Tensor[R, D, M, M].

        Applies only the predictor row of each mask's class (`classes`: int64 Tensor[R]): a
        batched matrix product instead of all C channels, C times less work at inference.
        """
        if self.predictor.out_channels == 1:
            return self.predictor(x)
        weight = self.predictor.weight[classes, :, 0, 0]  # [R, D]
        logits = torch.bmm(weight[:, None, :], x.flatten(2)).view(x.shape[0], 1, *x.shape[2:])
        return logits + self.predictor.bias[classes].view(-1, 1, 1, 1)

    def forward(self, x: Tensor, instances: list[Instances]) -> dict[str, Tensor] | list[Instances]:
        """Training: ``{"loss_mask": ...}`` for foreground proposals with gt; inference: sets
        `pred_masks` on `instances` (detections with `pred_classes`) and returns them."""
        if self.training:
            return {"loss_mask": mask_rcnn_loss(self.predictor(self.layers(x)), instances) * self.loss_weight}
        classes = torch.cat([p.pred_classes for p in instances]) if instances else x.new_zeros(0, dtype=torch.long)
        probs = self.predict(x, classes)["mask_probs"].split([len(p) for p in instances])
        for p, prob in zip(instances, probs):
            p.pred_masks = prob
        return instances

    def predict(self, x: Tensor, classes: Tensor) -> dict[str, Tensor]:
        """Inference on tensors (the exportable core): pooled features Tensor[R, C, M/2, M/2] of R
        detections of `classes` (int64 Tensor[R]) -> ``{"mask_probs": float32 Tensor[R, 1, M, M]}``,
        each detection's class mask as box-relative probabilities."""
        return {"mask_probs": self.class_logits(self.layers(x), classes).float().sigmoid()}

    def instance_fields(self, outputs: dict[str, Tensor], boxes: Tensor) -> dict[str, Tensor]:
        """The Instances fields of `predict`'s outputs, all detections together: `pred_masks`."""
        return {"pred_masks": outputs["mask_probs"]}
