"""Keypoint R-CNN for the synthetic shapes set, trained from scratch on a CPU in minutes.

`shapes_mask_rcnn`'s narrow ResNet-18 + FPN, RPN and box head, with `keypoint_rcnn_fpn`'s keypoint
branch instead of the mask branch, for the 6 shapes keypoints (square corners, triangle apex and
base corners, circle centre) with 4 x 64-channel convs, on boxes enlarged by 1.25. Horizontal flips swap left/right
corners.
"""
from copy import deepcopy

from .common.models.keypoint_rcnn_fpn import model as _keypoint_rcnn
from .shapes_mask_rcnn import dataloader, evaluator, lr_scheduler, model, optimizer, trainer

model.roi_heads.branches = deepcopy(_keypoint_rcnn.roi_heads.branches)
model.roi_heads.branches.keypoint.head.update(num_keypoints=6, conv_dims=[64] * 4)
# Shapes boxes are the visible pixels' extent while corners sit at sub-pixel positions on or just
# outside it (75-88 % of corners lie outside their box, by 0.3-0.7 px): a head that sees only the box
# cannot target or predict them. Seeing 1.25 x the box puts every corner inside its heatmap.
model.roi_heads.branches.keypoint.box_scale = 1.25
dataloader.train.mapper.use_instance_mask = False
dataloader.train.mapper.use_keypoint = True
# At lr 0.02 the keypoint loss (cross-entropy over 56 x 56 cells, ~7 at the start) drove the
# from-scratch model to NaN by step 109; clipping the gradient norm keeps the main job's schedule.
trainer.clip_grad_norm = 5.0
