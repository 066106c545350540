"""StandardROIHeads: the box stage, then per-ROI branches (masks, keypoints) on pooled FPN features."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detrun.structures import ImageList, Instances

from ..feature_protocol import FeatureUse, ReadsFeatures
from ..matcher import Matcher
from .base import ROIHeads
from .branch import ROIBranch
from .fast_rcnn import FastRCNNOutputLayers, proposal_box_tensor
from .poolers import ROIPooler


class StandardROIHeads(ROIHeads, ReadsFeatures):
    """Thin orchestrator of the box stage and the per-ROI branches (Detectron2's StandardROIHeads).

    Training: label and sample proposals (`ROIHeads`), then the box losses on all sampled
    proposals and each branch's losses on the proposals it selects. Inference: box detections,
    then every branch on the detected boxes.

    Args (besides those of `ROIHeads`):
        box_in_features: feature levels the box pooler reads, e.g. ``["p2", "p3", "p4", "p5"]``.
        box_pooler: pools box features (7 x 7).
        box_head: pooled features -> per-box features.
        box_predictor: per-box features -> class logits and box deltas, losses, inference.
        branches: name -> `ROIBranch`, e.g. ``{"mask": ...}`` for Mask R-CNN, ``{"keypoint": ...}``
            for Keypoint R-CNN, ``{}`` for Faster R-CNN. Branch ``name`` registers its modules as
            ``{name}_pooler`` and ``{name}_head``.

    Inference returns per image `pred_boxes`, `scores`, `pred_classes` and the branches' fields,
    e.g. `pred_masks` as float probabilities Tensor[N, 1, M, M] (pasted later by
    `detector_postprocess`) and `pred_keypoints` Tensor[N, K, 3].
    """

    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: FastRCNNOutputLayers,
        branches: dict[str, ROIBranch] | None = None,
    ):
        super().__init__(
            num_classes=num_classes,
            batch_size_per_image=batch_size_per_image,
            positive_fraction=positive_fraction,
            proposal_matcher=proposal_matcher,
            proposal_append_gt=proposal_append_gt,
        )
        self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        _bind_predictors(box_head, box_predictor)
        self.branches = dict(branches or {})
        for name, branch in self.branches.items():
            if name == "box":
                raise ValueError("StandardROIHeads: 'box' is the box stage; name the branch otherwise")
            self.add_module(f"{name}_pooler", branch.pooler)
            self.add_module(f"{name}_head", branch.head)

    def feature_uses(self) -> list[FeatureUse]:
        uses = [FeatureUse("box_in_features", tuple(self.box_in_features), "box_pooler.scales",
                           _scales(self.box_pooler), as_scales=True)]
        for name, branch in self.branches.items():
            uses.append(FeatureUse(f"branches.{name}.in_features", tuple(branch.in_features),
                                   f"branches.{name}.pooler.scales", _scales(branch.pooler), as_scales=True))
        return uses

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        """Training: (sampled proposals, {loss_cls, loss_box_reg, branch losses}); inference: (detections, {})."""
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__} in training mode needs targets (gt Instances) for every image")
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self.forward_box(features, proposals, targets)
            losses.update(self.forward_branches(features, proposals))
            return proposals, losses
        detections = self.forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def predict(self, features: dict[str, Tensor], proposal_boxes: list[Tensor], image_sizes: Tensor
                ) -> dict[str, Tensor]:
        """Inference on tensors only (the exportable core).

        Args:
            features: backbone outputs by name.
            proposal_boxes: per image, proposals Tensor[R_i, 4].
            image_sizes: int64 Tensor[N, 2], (height, width) of each image before padding.

        Returns:
            ``"boxes"`` Tensor[D, 4], ``"scores"`` Tensor[D], ``"classes"`` int64 Tensor[D] of all
            images' detections (image by image, each by decreasing score), ``"counts"`` int64
            Tensor[N] detections per image, and each branch head's outputs over the same D
            detections (`predict` of the head: ``"mask_probs"``, ``"keypoint_heatmaps"``).
        """
        detections = self.detect(features, proposal_boxes, image_sizes)
        boxes = [d[0] for d in detections]
        device = image_sizes.device
        outputs = {
            "boxes": torch.cat(boxes),
            "scores": torch.cat([d[1] for d in detections]),
            "classes": torch.cat([d[2] for d in detections]),
            # (Each count is symbolic under torch.export: no Python list of them.)
            "counts": torch.stack([torch.scalar_tensor(b.shape[0], dtype=torch.int64, device=device) for b in boxes]),
        }
        for name, branch in self.branches.items():
            x = branch.pooler([features[f] for f in branch.in_features], [branch.scale_boxes(b) for b in boxes])
            outputs.update(branch.head.predict(x, outputs["classes"]))
        return outputs

    def detect(self, features: dict[str, Tensor], proposal_boxes: list[Tensor], image_sizes: Tensor
               ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The box stage's inference on tensors: per image (boxes Tensor[D_i, 4], scores, classes)."""
        predictions = self.box_predictions(features, proposal_boxes)
        return self.box_predictor.inference_tensors(predictions, proposal_boxes, image_sizes)

    def instance_fields(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The branches' Instances fields (`pred_masks`, `pred_keypoints`...) from `predict`'s
        outputs, over all detections (the layer above the tensor core; not exported)."""
        fields = {}
        for branch in self.branches.values():
            fields.update(branch.head.instance_fields(outputs, branch.scale_boxes(outputs["boxes"])))
        return fields

    def tensor_core_missing(self) -> str | None:
        """Why `predict` can't run (a branch head without `predict` / `instance_fields`), or None."""
        for name, branch in self.branches.items():
            if not (hasattr(branch.head, "predict") and hasattr(branch.head, "instance_fields")):
                return (f"branch {name!r}: {type(branch.head).__name__} has no tensor-only "
                        "predict(x, classes) / instance_fields(outputs, boxes)")
        return None

    def box_predictions(self, features: dict[str, Tensor], proposals: list[Instances] | list[Tensor]
                        ) -> tuple[Tensor, Tensor]:
        """The box stage on `proposals` (Instances with `proposal_boxes`, or box tensors): (class
        logits Tensor[R, C+1], deltas Tensor[R, C*4 or 4]), images concatenated."""
        x = self.box_pooler([features[f] for f in self.box_in_features], [proposal_box_tensor(p) for p in proposals])
        return self.box_predictor(self.box_head(x))

    def forward_box(self, features: dict[str, Tensor], proposals: list[Instances],
                    targets: list[Instances] | None = None) -> dict[str, Tensor] | list[Instances]:
        """Box losses of sampled proposals (training) or per-image detections (inference).

        `targets` (the ground truth) serve box stages that re-label their own boxes (Cascade R-CNN).
        """
        predictions = self.box_predictions(features, proposals)
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        return self.box_predictor.inference(predictions, proposals)

    def forward_branches(self, features: dict[str, Tensor], instances: list[Instances]) -> dict[str, Tensor] | list[Instances]:
        """Training: every branch's losses on the sampled proposals it selects. Inference: every
        branch's outputs set on the detections, which are returned."""
        losses = {}
        for branch in self.branches.values():
            if self.training:
                selected = branch.select(branch.boxes_seen(instances, "proposal_boxes"), self.num_classes)
                boxes = [p.proposal_boxes for p in selected]
            else:
                selected = branch.boxes_seen(instances, "pred_boxes")
                boxes = [p.pred_boxes for p in selected]
            x = branch.pooler([features[f] for f in branch.in_features], boxes)
            result = branch.head(x, selected)
            if self.training:
                losses.update(result)
            elif selected is not instances:  # copy the head's outputs back, keeping the detected boxes
                for seen, detections in zip(selected, instances):
                    for name, value in seen.get_fields().items():
                        if name != "pred_boxes":
                            detections.set(name, value)
        return losses if self.training else instances

    def forward_with_given_boxes(self, features: dict[str, Tensor], instances: list[Instances]) -> list[Instances]:
        """Inference of the per-ROI branches (masks, keypoints) for given `pred_boxes` / `pred_classes`."""
        return self.forward_branches(features, instances)


def _scales(pooler: nn.Module) -> tuple[float, ...] | None:
    scales = getattr(pooler, "scales", None)  # a custom pooler may not expose them
    return tuple(scales) if scales is not None else None


def _bind_predictors(box_head: nn.Module, box_predictor: nn.Module) -> None:
    """Give each box predictor its box head's output size (derived when the predictor's
    `in_channels` is None, checked otherwise); a `ModuleList` of each means one per cascade stage."""
    pairs = (list(enumerate(zip(box_head, box_predictor))) if isinstance(box_head, nn.ModuleList)
             else [(None, (box_head, box_predictor))])
    for k, (head, predictor) in pairs:
        if not hasattr(predictor, "bind_in_channels"):
            continue  # a custom predictor sizes itself
        where = "box_predictor" if k is None else f"box_predictors[{k}]"
        size = getattr(head, "output_size", None)
        if size is None:
            if predictor.in_channels is None:
                raise ValueError(f"{where}.in_channels is null (derived from the box head), but the box head "
                                 f"{type(head).__name__} has no `output_size`; set {where}.in_channels")
            continue
        predictor.bind_in_channels(int(size), where)
