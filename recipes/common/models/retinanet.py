"""RetinaNet, ResNet-50-FPN (P3-P7), with Detectron2's defaults (its retinanet_R_50_FPN_1x).

P6 and P7 come from the bottom-up C5 (res5), as in Detectron2; 3 sizes x 3 aspect ratios of
anchors per level; focal loss (alpha 0.25, gamma 2) and smooth-L1 (beta 0.1) box regression.
Start from MSRA's Caffe2 ImageNet ResNet-50 (``model.weights=/path/to/R-50.pkl``): BGR input, pixel
std 1, stride in the 1x1 convs, frozen batch norms.
"""
from detrun.config import L
from detrun.modeling import (
    FPN,
    Box2BoxTransform,
    DefaultAnchorGenerator,
    LastLevelP6P7,
    Matcher,
    ResNet,
    RetinaNet,
    RetinaNetHead,
)

model = L(RetinaNet)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            depth=50,
            out_features=["res3", "res4", "res5"],
            norm="FrozenBN",
            freeze_at=2,
            stride_in_1x1=True,
        ),
        in_features=None,  # every output of bottom_up.output_shape(), finest first
        out_channels=256,
        top_block=L(LastLevelP6P7)(in_channels=2048, out_channels="${..out_channels}", in_feature="res5"),
    ),
    head=L(RetinaNetHead)(
        in_channels="${..backbone.out_channels}",
        num_classes="${..num_classes}",
        num_anchors=9,
        conv_dims=[256, 256, 256, 256],
        norm="",
        prior_prob=0.01,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    anchor_generator=L(DefaultAnchorGenerator)(
        # 3 octave scales per level: x, x * 2^(1/3), x * 2^(2/3)
        sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
        aspect_ratios=[[0.5, 1.0, 2.0]],
        strides=[8, 16, 32, 64, 128],  # checked against the backbone's output_shape() when built
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
    anchor_matcher=L(Matcher)(thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True),
    num_classes=80,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    box_reg_loss_type="smooth_l1",
    smooth_l1_beta=0.1,
    test_score_thresh=0.05,
    test_topk_candidates=1000,
    test_nms_thresh=0.5,
    max_detections_per_image=100,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
    weights=None,
)
