"""Keypoint R-CNN, ResNet-50-FPN, with Detectron2's defaults (its keypoint_rcnn_R_50_FPN_1x).

`mask_rcnn_fpn` with one class (person) and a keypoint branch instead of the mask branch: 14 x 14
pooled features, 8 x 512 convs, 56 x 56 heatmaps for COCO's 17 keypoints, the loss normalised
by the visible keypoints; 1500 proposals per image in training and smooth-L1 beta 0.5 for boxes
(Detectron2: "keypoint AP degrades when using plain L1 loss").
"""
from copy import deepcopy

from detrun.config import L
from detrun.modeling import KRCNNConvDeconvUpsampleHead, ROIBranch, ROIPooler

from .mask_rcnn_fpn import model as _mask_rcnn

model = deepcopy(_mask_rcnn)  # a copy, so that importing both models keeps both intact
model.proposal_generator.post_nms_topk = [1500, 1000]
model.roi_heads.num_classes = 1
model.roi_heads.box_predictor.smooth_l1_beta = 0.5
model.roi_heads.branches = {
    "keypoint": L(ROIBranch)(
        in_features=["p2", "p3", "p4", "p5"],
        pooler=L(ROIPooler)(output_size=14, scales=[0.25, 0.125, 0.0625, 0.03125], sampling_ratio=0, aligned=True),
        head=L(KRCNNConvDeconvUpsampleHead)(
            in_channels="${.....backbone.out_channels}",
            num_keypoints=17,
            conv_dims=[512] * 8,
            loss_normalizer="visible",
        ),
        proposals="visible_keypoints",
    ),
}
