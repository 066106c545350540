"""Panoptic FPN (Kirillov et al., 2019): Mask R-CNN plus a semantic head on the same FPN, and
Detectron2's heuristic that combines their outputs into one panoptic segmentation."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detrun.structures import ImageList, Instances

from .rcnn import GeneralizedRCNN
from .semantic_seg import padded_label_maps


class PanopticFPN(GeneralizedRCNN):
    """`GeneralizedRCNN` + a semantic segmentation head whose class 0 is "things" and classes
    1..S the stuff classes (Detectron2's "separated" layout).

    Training inputs need ``"instances"`` and ``"sem_seg"``; losses are the R-CNN losses times
    `instance_loss_weight` plus ``loss_sem_seg`` (weighted by the head's ``loss_weight``).
    In eval mode each output holds ``"instances"``, ``"sem_seg"`` and ``"panoptic_seg"`` (see
    `combine_semantic_and_instance_outputs`, run at the output resolution).

    Args:
        sem_seg_head: e.g. `SemSegFPNHead` with ``num_classes`` = 1 + the stuff classes.
        combine_overlap_thresh: an instance is dropped if more than this fraction of its mask is
            already taken by higher-scoring instances (Detectron2: 0.5).
        combine_stuff_area_thresh: stuff regions smaller than this many pixels (at the output
            resolution) are left void (Detectron2: 4096, for COCO's ~800 px images).
        combine_instances_score_thresh: instances below this score are not pasted (Detectron2: 0.5).
        instance_loss_weight: factor on the R-CNN losses (Detectron2: 1.0).
        backbone, proposal_generator, roi_heads, pixel_mean, pixel_std, input_format, weights:
            see `GeneralizedRCNN`.
    """

    training_targets = ("instances", "sem_seg")

    def __init__(self, *, sem_seg_head: nn.Module, combine_overlap_thresh: float = 0.5,
                 combine_stuff_area_thresh: int = 4096, combine_instances_score_thresh: float = 0.5,
                 instance_loss_weight: float = 1.0, weights: str | None = None, **kwargs):
        super().__init__(weights=None, **kwargs)
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh
        self.instance_loss_weight = instance_loss_weight
        self.finish_init(weights)  # again, now that the semantic head is assigned

    def compute_losses(self, images: ImageList, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``loss_sem_seg`` and the R-CNN losses (times `instance_loss_weight`)."""
        gt_instances = self.ground_truth(batched_inputs)
        features = self.backbone(images.tensor)
        targets = padded_label_maps(batched_inputs, images, self.sem_seg_head.ignore_value, self.device)
        _, losses = self.sem_seg_head(features, targets)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        for key, value in {**proposal_losses, **detector_losses}.items():
            losses[key] = value * self.instance_loss_weight
        return losses

    def inference_tensors(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensor-only inference core (see `MetaArchitecture`): `GeneralizedRCNN`'s detections
        (``boxes``, ``scores``, ``classes``, ``counts``, ``mask_probs``) plus ``"sem_seg"`` logits
        Tensor[N, C, Hp, Wp] over the padded batch. The panoptic combination is not part of it: it
        runs in `postprocess`, on the results at each input's size."""
        missing = self.tensor_core_missing()
        if missing is not None:
            raise NotImplementedError(f"{type(self).__name__} has no tensor-only inference core: {missing}")
        features = self.backbone(images)
        logits, _ = self.sem_seg_head(features)
        proposals = self.proposal_generator.predict_proposals(images, features, image_sizes)
        return {**self.roi_heads.predict(features, proposals, image_sizes), "sem_seg": logits}

    def raw_inference(self, images: ImageList) -> list[dict[str, Any]]:
        """``[{"instances": Instances, "sem_seg": Tensor[C, Hp, Wp]}]`` at network resolution: the
        Instances layer over `inference_tensors`, or the parts' Instances API when a custom part
        has no tensor-only inference (eager only)."""
        if self.tensor_core_missing() is None:
            return super().raw_inference(images)
        features = self.backbone(images.tensor)
        logits, _ = self.sem_seg_head(features)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        return [{"sem_seg": s, "instances": r} for s, r in zip(logits, results)]

    def postprocess(self, results: list[dict[str, Any]], batched_inputs: list[dict[str, Any]],
                    image_sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """Rescale instances and semantic scores to each input's size, then combine them there."""
        outputs = super().postprocess(results, batched_inputs, image_sizes)
        for out in outputs:
            out["panoptic_seg"] = combine_semantic_and_instance_outputs(
                out["instances"], out["sem_seg"].argmax(dim=0), overlap_threshold=self.combine_overlap_thresh,
                stuff_area_thresh=self.combine_stuff_area_thresh,
                instances_score_thresh=self.combine_instances_score_thresh)
        return outputs


def combine_semantic_and_instance_outputs(instances: Instances, semantic: torch.Tensor, *, overlap_threshold: float,
                                          stuff_area_thresh: int, instances_score_thresh: float
                                          ) -> tuple[torch.Tensor, list[dict]]:
    """Detectron2's Panoptic FPN combination: instances first, stuff in what is left.

    Instances, by decreasing score while the score is at least `instances_score_thresh`, claim
    their mask's still-free pixels, unless more than `overlap_threshold` of the mask is taken
    already. Then each semantic class other than 0 ("things") takes its free pixels if they
    number at least `stuff_area_thresh`. Unclaimed pixels stay 0 (void).

    Args:
        instances: ``pred_masks`` bool Tensor[N, H, W], ``scores``, ``pred_classes``.
        semantic: int Tensor[H, W] of semantic classes (the argmax of the scores).

    Returns:
        (int32 Tensor[H, W] segment ids 1..K, 0 void; K dicts ``{"id", "isthing", "category_id",
        "score", "instance_id"}`` for instances (category: the thing class) and ``{"id",
        "isthing", "category_id", "area"}`` for stuff (category: the semantic class)).
    """
    panoptic = torch.zeros_like(semantic, dtype=torch.int32)
    segments: list[dict] = []
    masks = instances.pred_masks.to(dtype=torch.bool, device=panoptic.device)
    for index in torch.argsort(-instances.scores).tolist():
        score = instances.scores[index].item()
        if score < instances_score_thresh:
            break
        mask = masks[index]
        area = mask.sum().item()
        if area == 0:
            continue
        taken = mask & (panoptic > 0)
        overlap = taken.sum().item()
        if overlap / area > overlap_threshold:
            continue
        if overlap > 0:
            mask = mask & (panoptic == 0)
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append({"id": segment_id, "isthing": True, "score": score,
                         "category_id": int(instances.pred_classes[index].item()), "instance_id": index})
    for label in torch.unique(semantic).tolist():
        if label == 0:  # the "things" class: instances speak for it
            continue
        mask = (semantic == label) & (panoptic == 0)
        area = mask.sum().item()
        if area < stuff_area_thresh:
            continue
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append({"id": segment_id, "isthing": False, "category_id": int(label), "area": int(area)})
    return panoptic, segments
