"""Mask R-CNN with a ViT-B/16 and ViTDet's simple feature pyramid, in Detectron2's conventions
(its ``common/models/mask_rcnn_vitdet.py``).

`mask_rcnn_fpn` with the FPN replaced by `SimpleFeaturePyramid` over a plain `ViT` (window 14,
global attention in blocks 2, 5, 8, 11, relative position embeddings, drop path 0.1, square
1024 x 1024 input), LayerNorm in the pyramid and the heads, two RPN convs and a 4conv1fc box
head. RGB input with ImageNet statistics, as MAE was pretrained. Start from MAE weights:
``model.weights=/path/to/mae_pretrain_vit_base.pth`` (its names go under ``backbone.net``).
"""
from copy import deepcopy

from detrun.config import L
from detrun.modeling import LastLevelMaxPool, SimpleFeaturePyramid, ViT

from .mask_rcnn_fpn import model as _mask_rcnn

model = deepcopy(_mask_rcnn)  # a copy, so that importing both models keeps both intact
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

model.backbone = L(SimpleFeaturePyramid)(
    net=L(ViT)(
        img_size=1024,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.1,
        norm_eps=1e-6,
        window_size=14,
        window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],  # 2, 5, 8, 11 attend globally
        use_rel_pos=True,
        pretrain_img_size=224,
        pretrain_use_cls_token=True,
        out_feature="last_feat",
    ),
    in_feature="${.net.out_feature}",
    out_channels=256,
    scale_factors=[4.0, 2.0, 1.0, 0.5],  # p2-p5 from the stride-16 ViT; p6 from the top block
    top_block=L(LastLevelMaxPool)(),
    norm="LN",
    square_pad=1024,
)

model.proposal_generator.head.conv_dims = [-1, -1]  # two RPN convs
model.roi_heads.box_head.update(conv_dims=[256, 256, 256, 256], fc_dims=[1024], conv_norm="LN")  # 4conv1fc
model.roi_heads.box_predictor.in_channels = None  # the box head's output size, derived when built
model.roi_heads.branches.mask.head.conv_norm = "LN"
