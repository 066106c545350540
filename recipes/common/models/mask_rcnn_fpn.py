"""Mask R-CNN, ResNet-50-FPN, with Detectron2's defaults (its mask_rcnn_R_50_FPN_1x).

Detectron2 starts from MSRA's Caffe2 ImageNet ResNet: stride in the 1x1 convs, BGR input,
pixel std 1. Give those weights with ``model.weights=/path/to/R-50.pkl`` (any format
`detrun.checkpoint.load_weights` reads works); without weights the model starts from random
initialisation, which frozen batch norms are not made for.
"""
from detrun.config import L
from detrun.modeling import (
    FPN,
    RPN,
    Box2BoxTransform,
    DefaultAnchorGenerator,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    GeneralizedRCNN,
    LastLevelMaxPool,
    MaskRCNNConvUpsampleHead,
    Matcher,
    ResNet,
    ROIBranch,
    ROIPooler,
    StandardROIHeads,
    StandardRPNHead,
)

model = L(GeneralizedRCNN)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            depth=50,
            out_features=["res2", "res3", "res4", "res5"],
            norm="FrozenBN",
            freeze_at=2,
            stride_in_1x1=True,
        ),
        in_features=None,  # every output of bottom_up.output_shape(), finest first
        out_channels=256,
        top_block=L(LastLevelMaxPool)(),
    ),
    proposal_generator=L(RPN)(
        in_features=["p2", "p3", "p4", "p5", "p6"],
        head=L(StandardRPNHead)(in_channels="${...backbone.out_channels}", num_anchors=3),
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=[[0.5, 1.0, 2.0]],
            strides=[4, 8, 16, 32, 64],  # checked against the backbone's output_shape() when built
            offset=0.0,
        ),
        anchor_matcher=L(Matcher)(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=[2000, 1000],
        post_nms_topk=[1000, 1000],
        nms_thresh=0.7,
    ),
    roi_heads=L(StandardROIHeads)(
        num_classes=80,
        batch_size_per_image=512,
        positive_fraction=0.25,
        proposal_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False),
        box_in_features=["p2", "p3", "p4", "p5"],
        box_pooler=L(ROIPooler)(output_size=7, scales=[0.25, 0.125, 0.0625, 0.03125], sampling_ratio=0, aligned=True),
        box_head=L(FastRCNNConvFCHead)(
            in_channels="${...backbone.out_channels}",
            input_size="${..box_pooler.output_size}",
            conv_dims=[],
            fc_dims=[1024, 1024],
        ),
        box_predictor=L(FastRCNNOutputLayers)(
            in_channels="${..box_head.fc_dims[1]}",  # the last FC layer's width
            num_classes="${..num_classes}",
            box2box_transform=L(Box2BoxTransform)(weights=[10.0, 10.0, 5.0, 5.0]),
            test_score_thresh=0.05,
            test_nms_thresh=0.5,
            test_topk_per_image=100,
        ),
        branches={
            "mask": L(ROIBranch)(
                in_features=["p2", "p3", "p4", "p5"],
                pooler=L(ROIPooler)(output_size=14, scales=[0.25, 0.125, 0.0625, 0.03125], sampling_ratio=0,
                                    aligned=True),
                head=L(MaskRCNNConvUpsampleHead)(
                    in_channels="${.....backbone.out_channels}",
                    num_classes="${....num_classes}",
                    conv_dims=[256, 256, 256, 256, 256],
                ),
                proposals="foreground",
            ),
        },
    ),
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
    weights=None,
)
