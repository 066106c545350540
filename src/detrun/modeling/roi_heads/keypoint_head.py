"""Keypoint head (Keypoint R-CNN): per-keypoint heatmaps over each box, their loss and decoding."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detrun.structures import Instances

KEYPOINT_SCORES = ("probability", "logit")


def keypoint_rcnn_loss(pred_keypoint_logits: Tensor, instances: list[Instances], normalizer: float | None) -> Tensor:
    """Cross-entropy of each labelled keypoint's heatmap cell over the S x S cells, summed and normalised.

    Args:
        pred_keypoint_logits: Tensor[R, K, S, S] for the selected proposals of all images.
        instances: per image, those proposals with `proposal_boxes` and `gt_keypoints` (`Keypoints`).
        normalizer: divisor of the summed loss; None divides by the number of keypoints that are
            labelled and inside their box (Detectron2's "visible" normalisation).

    Returns:
        Scalar; 0 (attached to the logits) without any such keypoint.
    """
    side = pred_keypoint_logits.shape[-1]
    targets, valid = [], []
    for p in instances:
        if len(p) == 0:
            continue
        heatmaps, valid_p = p.gt_keypoints.to_heatmap(p.proposal_boxes.tensor, side)
        targets.append(heatmaps.flatten())
        valid.append(valid_p.flatten())
    if not targets or not torch.cat(valid).any():
        return pred_keypoint_logits.sum() * 0
    valid = torch.cat(valid).nonzero().squeeze(1)
    logits = pred_keypoint_logits.flatten(0, 1).flatten(1)  # [R*K, S*S]
    loss = F.cross_entropy(logits[valid].float(), torch.cat(targets)[valid], reduction="sum")
    return loss / (valid.numel() if normalizer is None else normalizer)


def heatmaps_to_keypoints(maps: Tensor, rois: Tensor) -> Tensor:
    """Decode heatmaps over boxes into image keypoints (Detectron2's and torchvision's procedure).

    Each box's K maps are resized bicubically to the box's size rounded up to whole pixels; the
    arg-max cell's centre, scaled back to the exact box size, is the keypoint.

    Args:
        maps: Tensor[R, K, S, S] logits.
        rois: Tensor[R, 4] XYXY boxes, pixels.

    Returns:
        float Tensor[R, K, 4]: x, y (continuous pixels), the logit at the maximum, and its
        probability under a softmax over the box's cells normalised by the S x S map (Detectron2's
        score: comparable across object sizes).
    """
    maps = maps.float()
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    num_keypoints = maps.shape[1]
    out = maps.new_zeros(len(rois), num_keypoints, 4)
    index = torch.arange(num_keypoints, device=maps.device)
    # One interpolation per box: every box has its own output size.
    for i in range(len(rois)):
        size = (int(heights_ceil[i]), int(widths_ceil[i]))
        roi_map = F.interpolate(maps[i : i + 1], size=size, mode="bicubic", align_corners=False)[0]
        max_logit = roi_map.flatten(1).max(dim=1).values.view(-1, 1, 1)
        probs = (roi_map - max_logit).exp() / (maps[i] - max_logit).exp().sum(dim=(1, 2), keepdim=True)
        pos = roi_map.flatten(1).argmax(dim=1)
        x_int, y_int = pos % size[1], torch.div(pos, size[1], rounding_mode="floor")
        out[i, :, 0] = (x_int.float() + 0.5) * (widths[i] / widths_ceil[i]) + rois[i, 0]
        out[i, :, 1] = (y_int.float() + 0.5) * (heights[i] / heights_ceil[i]) + rois[i, 1]
        out[i, :, 2] = roi_map[index, y_int, x_int]
        out[i, :, 3] = probs[index, y_int, x_int]
    return out


class KRCNNConvDeconvUpsampleHead(nn.Module):
    """Conv 3x3 + ReLU layers, a 2x transposed conv to K maps, then 2x bilinear upsampling.

    With Detectron2's 8 x 512 convs and 14 x 14 pooled features this gives 56 x 56 heatmaps.
    Parameter names follow Detectron2 (``conv_fcn1..``, ``score_lowres``). Kaiming (fan_out) init.

    Args:
        in_channels: channels of the pooled features (the FPN width).
        num_keypoints: K.
        conv_dims: widths of the conv layers (Detectron2 and torchvision: ``[512] * 8``).
        loss_weight: multiplier of `loss_keypoint`.
        loss_normalizer: "visible" divides the summed loss by the batch's labelled keypoints inside
            their boxes; a number N divides by N x the number of images (Detectron2's options).
        keypoint_score: third value of `pred_keypoints`: "probability" (Detectron2's normalised
            softmax score) or "logit" (the heatmap's value at the maximum, torchvision's
            ``keypoints_scores``).
    """

    def __init__(self, *, in_channels: int, num_keypoints: int, conv_dims: list[int] = (512,) * 8,
                 loss_weight: float = 1.0, loss_normalizer: str | float = "visible",
                 keypoint_score: str = "probability"):
        super().__init__()
        if loss_normalizer != "visible" and not isinstance(loss_normalizer, (int, float)):
            raise ValueError(f"loss_normalizer must be 'visible' or a number, got {loss_normalizer!r}")
        if keypoint_score not in KEYPOINT_SCORES:
            raise ValueError(f"keypoint_score must be one of {KEYPOINT_SCORES}, got {keypoint_score!r}")
        self.num_keypoints = num_keypoints
        self.loss_weight = loss_weight
        self.loss_normalizer = loss_normalizer
        self.keypoint_score = keypoint_score
        self.convs = []
        channels = in_channels
        for k, dim in enumerate(conv_dims, start=1):
            conv = nn.Conv2d(channels, dim, kernel_size=3, padding=1)
            self.add_module(f"conv_fcn{k}", conv)
            self.convs.append(conv)
            channels = dim
        self.score_lowres = nn.ConvTranspose2d(channels, num_keypoints, kernel_size=4, stride=2, padding=1)
        for layer in self.convs + [self.score_lowres]:
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def layers(self, x: Tensor) -> Tensor:
        """Pooled features Tensor[R, C, P, P] -> heatmap logits Tensor[R, K, 4P, 4P]."""
        for conv in self.convs:
            x = F.relu(conv(x))
        return F.interpolate(self.score_lowres(x), scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor, instances: list[Instances]) -> dict[str, Tensor] | list[Instances]:
        """Training: ``{"loss_keypoint": ...}`` for proposals with `gt_keypoints`; inference: sets
        `pred_keypoints` Tensor[N, K, 3] (x, y, score) and `pred_keypoint_heatmaps` Tensor[N, K, S, S]
        on `instances` and returns them."""
        if self.training:
            x = self.layers(x)
            normalizer = None if self.loss_normalizer == "visible" else len(instances) * self.loss_normalizer
            return {"loss_keypoint": keypoint_rcnn_loss(x, instances, normalizer) * self.loss_weight}
        boxes = torch.cat([p.pred_boxes.tensor for p in instances]) if instances else x.new_zeros(0, 4)
        fields = self.instance_fields(self.predict(x, None), boxes)
        sizes = [len(p) for p in instances]
        for p, kp, maps in zip(instances, fields["pred_keypoints"].split(sizes),
                               fields["pred_keypoint_heatmaps"].split(sizes)):
            p.pred_keypoints = kp
            p.pred_keypoint_heatmaps = maps
        return instances

    def predict(self, x: Tensor, classes: Tensor | None) -> dict[str, Tensor]:
        """Inference on tensors (the exportable core): pooled features Tensor[R, C, P, P] ->
        ``{"keypoint_heatmaps": Tensor[R, K, 4P, 4P]}`` (logits; `classes` is not used). Decoding
        them into keypoints resizes each box's maps to its own size, so it runs in
        `instance_fields`, outside an exported graph."""
        return {"keypoint_heatmaps": self.layers(x)}

    def instance_fields(self, outputs: dict[str, Tensor], boxes: Tensor) -> dict[str, Tensor]:
        """The Instances fields of `predict`'s outputs for detections `boxes` Tensor[R, 4] (as the
        branch saw them): `pred_keypoints` Tensor[R, K, 3] (x, y, score) and `pred_keypoint_heatmaps`."""
        maps = outputs["keypoint_heatmaps"]
        decoded = heatmaps_to_keypoints(maps.detach(), boxes)
        score = 3 if self.keypoint_score == "probability" else 2
        return {"pred_keypoints": decoded[:, :, [0, 1, score]], "pred_keypoint_heatmaps": maps}
