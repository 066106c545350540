"""ViT backbone, simple feature pyramid, and the ViTDet heads (LayerNorm, 4conv1fc, derived predictor width)."""
import pytest
import torch
from torch import nn

from detrun.config import instantiate
from detrun.modeling import (
    Box2BoxTransform,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    LastLevelMaxPool,
    Matcher,
    ROIPooler,
    SimpleFeaturePyramid,
    StandardROIHeads,
    ViT,
)
from detrun.modeling.backbone.norm import LayerNorm2d
from detrun.modeling.backbone.vit import abs_pos_for_grid, window_partition, window_unpartition
from detrun.structures import ImageList


def small_vit(**kwargs) -> ViT:
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=4, num_heads=2, window_size=2,
                window_block_indexes=[0, 2], pretrain_img_size=64)
    return ViT(**{**args, **kwargs})


def small_pyramid(**kwargs) -> SimpleFeaturePyramid:
    return SimpleFeaturePyramid(net=small_vit(), in_feature="last_feat", out_channels=16,
                                top_block=LastLevelMaxPool(), **kwargs)


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (128, 64)])
def test_pyramid_declares_the_shapes_it_outputs(size):
    model = small_pyramid().eval()
    shapes = model.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert list(out) == list(shapes)
    for name, spec in shapes.items():
        assert out[name].shape == (2, spec.channels, -(-size[0] // spec.stride), -(-size[1] // spec.stride)), name
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]


def test_padding_constraints_pad_every_image_to_the_square():
    model = small_pyramid(square_pad=128)
    assert model.padding_constraints == {"size_divisibility": 32, "square_size": 128}
    images = ImageList.from_tensors([torch.zeros(3, 100, 60), torch.zeros(3, 40, 128)], **model.padding_constraints)
    assert images.tensor.shape == (2, 3, 128, 128) and images.image_sizes == [(100, 60), (40, 128)]
    assert small_pyramid().padding_constraints == {"size_divisibility": 32, "square_size": 0}


def vitdet_b_parameter_count() -> int:
    """Detectron2's ViTDet-B backbone (``ViT(embed_dim=768, depth=12, num_heads=12, window_size=14,
    window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10], use_rel_pos=True, img_size=1024)``), counted
    from its definition: patch embedding, position embeddings of the 224-px MAE grid with a class
    token slot, per block two LayerNorms, qkv, proj and the MLP, and the relative position tables
    (2 * window - 1 rows per axis in windowed blocks, 2 * 64 - 1 in global ones, of head_dim 64)."""
    d, hidden, head_dim = 768, 4 * 768, 64
    block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d)
    rel_pos = 8 * 2 * (2 * 14 - 1) * head_dim + 4 * 2 * (2 * 64 - 1) * head_dim
    return (3 * 16 * 16 * d + d) + (14 * 14 + 1) * d + 12 * block + rel_pos


def test_vitdet_b_matches_detectron2s_parameter_count_and_output_shapes():
    from detrun.recipes.common.models.mask_rcnn_vitdet import model as node

    backbone = instantiate(node.backbone)
    assert sum(p.numel() for p in backbone.net.parameters()) == vitdet_b_parameter_count() == 85_889_024
    # Detectron2's ViTDet-B pyramid: p2-p6 of 256 channels at strides 4-64, inputs padded to 1024 x 1024.
    assert {k: (s.channels, s.stride) for k, s in backbone.output_shape().items()} == {
        "p2": (256, 4), "p3": (256, 8), "p4": (256, 16), "p5": (256, 32), "p6": (256, 64)}
    assert backbone.padding_constraints["square_size"] == 1024
    # The whole Mask R-CNN: 111M parameters in the ViTDet paper (Li et al. 2022, Table 4).
    model = instantiate(node)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 110.9
    assert model.roi_heads.box_predictor.cls_score.in_features == 1024  # 4conv1fc: derived from fc_dims=[1024]


def test_windows_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    windows, padded = window_partition(x, 3)
    assert windows.shape == (2 * 2 * 3, 3, 3, 3) and padded == (6, 9)
    torch.testing.assert_close(window_unpartition(windows, 3, padded, (5, 7)), x)


def test_global_and_one_covering_window_attend_alike():
    torch.manual_seed(0)
    global_vit = small_vit(window_block_indexes=[]).eval()
    windowed = small_vit(window_size=4, window_block_indexes=[0, 1, 2, 3]).eval()
    windowed.load_state_dict(global_vit.state_dict())  # rel-pos tables of the same size (7 x 7 grid offsets)
    x = torch.randn(1, 3, 64, 64)  # a 4 x 4 token grid: one window covers it
    with torch.no_grad():
        torch.testing.assert_close(windowed(x)["last_feat"], global_vit(x)["last_feat"])


def test_position_embeddings_follow_the_input_grid():
    pos = torch.randn(1, 1 + 4 * 4, 8)
    grid = abs_pos_for_grid(pos, True, (4, 4))
    torch.testing.assert_close(grid, pos[:, 1:].reshape(1, 4, 4, 8))
    assert abs_pos_for_grid(pos, True, (6, 3)).shape == (1, 6, 3, 8)
    model = small_vit(pretrain_use_cls_token=False).eval()
    assert model.pos_embed.shape == (1, 16, 32)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 48))["last_feat"].shape == (1, 32, 6, 3)


def test_activation_checkpointing_and_drop_path():
    torch.manual_seed(0)
    plain = small_vit(drop_path_rate=0.5)
    checkpointed = small_vit(drop_path_rate=0.5, use_act_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same drop-path draws
        model.train()
        model(x)["last_feat"].square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    plain.eval()
    with torch.no_grad():  # stochastic depth is the identity in eval
        torch.testing.assert_close(plain(x)["last_feat"], plain(x)["last_feat"])


def test_pyramid_uses_layer_norms_and_detectron2_names():
    model = small_pyramid()
    names = set(model.state_dict())
    assert {"simfp_2.0.weight", "simfp_2.1.weight", "simfp_2.3.weight", "simfp_2.4.weight", "simfp_2.4.norm.weight",
            "simfp_2.5.norm.bias", "simfp_5.1.norm.weight", "net.pos_embed", "net.blocks.1.attn.rel_pos_h",
            "net.blocks.3.mlp.fc2.weight", "net.patch_embed.proj.weight"} <= names
    assert "simfp_2.4.bias" not in names  # convs followed by a norm have no bias
    assert isinstance(model.simfp_3[1].norm, LayerNorm2d)
    with pytest.raises(ValueError, match="scale_factors may be 4.0, 2.0, 1.0 and 0.5"):
        SimpleFeaturePyramid(net=small_vit(), out_channels=8, scale_factors=[8.0, 4.0])
    with pytest.raises(ValueError, match="not an output of net"):
        SimpleFeaturePyramid(net=small_vit(), in_feature="res5", out_channels=8)


def roi_heads(box_head: nn.Module, in_channels: int | None) -> StandardROIHeads:
    return StandardROIHeads(
        num_classes=3, proposal_matcher=Matcher(thresholds=[0.5], labels=[0, 1]), box_in_features=["p2"],
        box_pooler=ROIPooler(output_size=7, scales=[0.25], sampling_ratio=0), box_head=box_head,
        box_predictor=FastRCNNOutputLayers(in_channels=in_channels, num_classes=3,
                                           box2box_transform=Box2BoxTransform(weights=[10, 10, 5, 5])))


def test_box_predictor_width_is_derived_from_the_box_head_or_checked():
    head = FastRCNNConvFCHead(in_channels=16, input_size=7, conv_dims=[8, 8], fc_dims=[32], conv_norm="LN")
    assert isinstance(head.conv1.norm, LayerNorm2d) and head.conv1.bias is None
    heads = roi_heads(head, None)
    assert heads.box_predictor.cls_score.in_features == 32 and heads.box_predictor.bbox_pred.out_features == 12
    conv_only = FastRCNNConvFCHead(in_channels=16, input_size=7, conv_dims=[8], fc_dims=[])
    assert roi_heads(conv_only, None).box_predictor.cls_score.in_features == 8 * 7 * 7
    with pytest.raises(ValueError, match=r"box_predictor.in_channels = 1024, but the box head gives 32 features"):
        roi_heads(FastRCNNConvFCHead(in_channels=16, input_size=7, fc_dims=[32]), 1024)
