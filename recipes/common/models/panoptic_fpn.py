"""Panoptic FPN, ResNet-50-FPN, with Detectron2's defaults (its panoptic_fpn_R_50_1x).

`mask_rcnn_fpn` plus a semantic FPN head over P2-P5 (128 channels, GroupNorm, stride 4) that
predicts COCO's 53 stuff classes and one "things" class (54), weighted 0.5 in the loss; the
panoptic result pastes instances scoring >= 0.5 (overlap <= 0.5) and stuff regions of >= 4096 px.
"""
from detrun.config import L
from detrun.modeling import PanopticFPN, SemSegFPNHead

from .mask_rcnn_fpn import model as _mask_rcnn

model = L(PanopticFPN)(
    **{k: v for k, v in _mask_rcnn.items() if k != "_target_"},
    sem_seg_head=L(SemSegFPNHead)(
        in_features=["p2", "p3", "p4", "p5"],
        in_strides=[4, 8, 16, 32],  # checked against the backbone's output_shape() when built
        in_channels="${..backbone.out_channels}",
        num_classes=54,  # 1 "things" + 53 stuff classes (Detectron2's separated COCO panoptic)
        conv_dims=128,
        common_stride=4,
        norm="GN",
        loss_weight=0.5,
        ignore_value=255,
    ),
    combine_overlap_thresh=0.5,
    combine_stuff_area_thresh=4096,
    combine_instances_score_thresh=0.5,
    instance_loss_weight=1.0,
)
