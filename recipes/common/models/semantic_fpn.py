"""Semantic FPN (Kirillov et al., 2019), ResNet-50-FPN: Detectron2's SemanticSegmentor with its
SemSegFPNHead (Detectron2 has no lazy config of it; the head is its Panoptic FPN one, trained
alone with loss weight 1 on COCO-stuff's 54 classes: 53 stuff + "things")."""
from detrun.config import L
from detrun.modeling import SemanticSegmentor

from .panoptic_fpn import model as _panoptic

model = L(SemanticSegmentor)(
    backbone=_panoptic.backbone,
    sem_seg_head=_panoptic.sem_seg_head,
    pixel_mean=_panoptic.pixel_mean,
    pixel_std=_panoptic.pixel_std,
    input_format=_panoptic.input_format,
    weights=None,
)
model.sem_seg_head.loss_weight = 1.0
model.backbone.top_block = None  # no P6: only the RPN read it
