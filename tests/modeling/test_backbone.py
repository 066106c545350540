"""ResNet, FPN and norms against torchvision's implementations (weights copied through load_weights)."""
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d as TVFrozenBN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as TVLastLevelP6P7

from detrun.checkpoint import convert_checkpoint, load_weights
from detrun.modeling import FPN, Backbone, FrozenBatchNorm2d, LastLevelMaxPool, LastLevelP6P7, ResNet, ShapeSpec
from detrun.modeling.backbone import get_norm


def randomize_bn(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics/affine so that a wrong mapping of norms shows up in outputs."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, TVFrozenBN)):
            n = m.weight.shape[0]
            m.running_mean.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) * 0.8 + 0.2)
            m.bias.data.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)


def tv_resnet_features(tv: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    out = {}
    for i, name in enumerate(["res2", "res3", "res4", "res5"]):
        x = getattr(tv, f"layer{i + 1}")(x)
        out[name] = x
    return out


@pytest.mark.parametrize("depth", [34, 101, 152])
def test_resnet_structure_matches_torchvision(depth):
    """Every torchvision parameter has a detrun counterpart of the same shape (built on the meta device: no compute)."""
    with torch.device("meta"):
        tv = getattr(torchvision.models, f"resnet{depth}")()
        ours = ResNet(depth=depth, stride_in_1x1=False, freeze_at=0)
    converted = convert_checkpoint(tv.state_dict(), ours.state_dict().keys(), "tv.pth").state_dict
    converted = {k: v.shape for k, v in converted.items() if not k.endswith("num_batches_tracked")}
    assert converted == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_matches_torchvision(depth, tmp_path):
    g = torch.Generator().manual_seed(depth)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    randomize_bn(tv, g)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    ours = ResNet(depth=depth, stride_in_1x1=False, norm="FrozenBN", freeze_at=0).eval()
    report = load_weights(ours, path, strict=True, verbose=False)
    assert report.ignored == ["fc.weight", "fc.bias"]
    x = torch.randn(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        expected = tv_resnet_features(tv, x)
        got = ours(x)
    for name, shape in ours.output_shape().items():
        assert got[name].shape == expected[name].shape
        assert got[name].shape[1] == shape.channels and 64 // got[name].shape[2] == shape.stride
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)


def test_stride_placement():
    msra = ResNet(depth=50, stride_in_1x1=True)
    tv_style = ResNet(depth=50, stride_in_1x1=False)
    assert msra.res3[0].conv1.stride == (2, 2) and msra.res3[0].conv2.stride == (1, 1)
    assert tv_style.res3[0].conv1.stride == (1, 1) and tv_style.res3[0].conv2.stride == (2, 2)
    assert msra.res2[0].conv1.stride == (1, 1)  # res2 keeps the stem's stride 4


def test_out_features_and_partial_build():
    r = ResNet(depth=18, out_features=["stem", "res3"], width=16)
    assert not hasattr(r, "res4")  # stages after the last requested one are not built
    out = r(torch.zeros(2, 3, 64, 64))
    assert set(out) == {"stem", "res3"}
    assert r.output_shape() == {"stem": ShapeSpec(16, 4), "res3": ShapeSpec(32, 8)}
    assert out["res3"].shape == (2, 32, 8, 8)
    with pytest.raises(ValueError, match="res6"):
        ResNet(depth=18, out_features=["res6"])
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth=42)


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 5])
def test_freeze_at(freeze_at):
    r = ResNet(depth=18, norm="BN", freeze_at=freeze_at, width=8)
    parts = ["stem", "res2", "res3", "res4", "res5"]
    for i, name in enumerate(parts):
        frozen = freeze_at >= i + 1
        part = getattr(r, name)
        assert all(p.requires_grad != frozen for p in part.parameters()), name
        norms = [m for m in part.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
        assert norms and all(isinstance(m, FrozenBatchNorm2d) == frozen for m in norms), name


def test_freezing_keeps_statistics():
    r = ResNet(depth=18, norm="BN", freeze_at=0, width=8)
    bn = r.stem.conv1.norm
    with torch.no_grad():
        bn.running_mean.fill_(0.3)
        bn.weight.fill_(2.0)
    x = torch.randn(1, 3, 32, 32)
    before = r.eval()(x)["res5"]
    r.freeze(5)
    assert isinstance(r.stem.conv1.norm, FrozenBatchNorm2d)
    assert torch.all(r.stem.conv1.norm.running_mean == 0.3) and torch.all(r.stem.conv1.norm.weight == 2.0)
    torch.testing.assert_close(r(x)["res5"], before)


def test_frozen_bn_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    ours, ref = FrozenBatchNorm2d(8), TVFrozenBN(8)
    randomize_bn(ref, g)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 5, 5, generator=g)
    torch.testing.assert_close(ours(x), ref(x))
    # A BatchNorm2d checkpoint loads into it (its step counter is dropped).
    bn = nn.BatchNorm2d(8)
    ours.load_state_dict(bn.state_dict())


@pytest.mark.parametrize("norm", ["BN", "SyncBN", "GN", ""])
def test_trainable_norms_train(norm):
    r = ResNet(depth=18, norm=norm, freeze_at=0, width=16).train()
    out = r(torch.randn(2, 3, 64, 64))["res5"]
    out.mean().backward()
    assert r.stem.conv1.weight.grad is not None and torch.isfinite(r.stem.conv1.weight.grad).all()
    assert (r.stem.conv1.bias is None) == (norm != "")


def test_norm_factory():
    assert isinstance(get_norm("GN", 48), nn.GroupNorm) and get_norm("GN", 48).num_groups == 16
    assert get_norm("", 8) is None
    with pytest.raises(ValueError, match="unknown norm 'IN'"):
        get_norm("IN", 8)
    # "LN": LayerNorm over the channels of each pixel, as nn.LayerNorm on a channels-last view.
    ln = get_norm("LN", 8)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 5, 7)
    reference = nn.LayerNorm(8, eps=1e-6)
    reference.load_state_dict(ln.state_dict())
    torch.testing.assert_close(ln(x), reference(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def fpn_tv_weights_test(tmp_path, depth, returned_layers, extra_tv, extra_ours, in_features):
    g = torch.Generator().manual_seed(1)
    tv = resnet_fpn_backbone(backbone_name=f"resnet{depth}", weights=None, trainable_layers=5,
                             returned_layers=returned_layers, extra_blocks=extra_tv).eval()
    randomize_bn(tv, g)
    with torch.no_grad():
        for name, p in tv.fpn.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if "weight" in name else 0.1))
    path = tmp_path / "tv_fpn.pth"
    torch.save({f"backbone.{k}": v for k, v in tv.state_dict().items()}, path)
    bottom_up = ResNet(depth=depth, stride_in_1x1=False, freeze_at=0, out_features=in_features)
    fpn = FPN(bottom_up=bottom_up, in_features=in_features, out_channels=256, top_block=extra_ours)
    wrapper = nn.ModuleDict({"backbone": fpn}).eval()
    load_weights(wrapper, path, strict=True, verbose=False)
    x = torch.randn(1, 3, 96, 128, generator=g)
    with torch.no_grad():
        expected = list(tv(x).values())
        got = fpn(x)
    assert list(got) == list(fpn.output_shape())
    assert len(got) == len(expected)
    for (name, value), ref in zip(got.items(), expected):
        assert value.shape[-1] == 128 // fpn.output_shape()[name].stride
        torch.testing.assert_close(value, ref, rtol=1e-4, atol=1e-4)
    return fpn


def test_fpn_maxpool_matches_torchvision(tmp_path):
    fpn = fpn_tv_weights_test(tmp_path, 18, [1, 2, 3, 4], None, LastLevelMaxPool(),
                              ["res2", "res3", "res4", "res5"])
    assert list(fpn.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    assert fpn.size_divisibility == 32


def test_fpn_p6p7_matches_torchvision(tmp_path):
    fpn = fpn_tv_weights_test(tmp_path, 18, [2, 3, 4], TVLastLevelP6P7(512, 256),
                              LastLevelP6P7(in_channels=512, out_channels=256, in_feature="res5"),
                              ["res3", "res4", "res5"])
    assert list(fpn.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    assert fpn.output_shape()["p7"] == ShapeSpec(256, 128)


def test_fpn_checks_its_inputs():
    r = ResNet(depth=18, width=8)
    with pytest.raises(ValueError, match="res6"):
        FPN(bottom_up=r, in_features=["res5", "res6"], out_channels=16)
    with pytest.raises(ValueError, match="doubling"):
        FPN(bottom_up=r, in_features=["res2", "res4"], out_channels=16)
    with pytest.raises(ValueError, match="expects 2048 channels from 'res5', which has 64"):
        FPN(bottom_up=r, in_features=["res4", "res5"], out_channels=16,
            top_block=LastLevelP6P7(in_channels=2048, out_channels=16))


def test_fpn_with_norm_and_names():
    fpn = FPN(bottom_up=ResNet(depth=18, width=8), in_features=["res4", "res5"], out_channels=16, norm="GN",
              top_block=LastLevelP6P7(in_channels=16, out_channels=16, in_feature="p5"))
    keys = set(fpn.state_dict())
    assert {"fpn_lateral4.weight", "fpn_lateral4.norm.weight", "fpn_output5.weight", "top_block.p6.weight"} <= keys
    assert "fpn_lateral4.bias" not in keys  # norm follows, so no bias
    out = fpn(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in out.items()} == {"p4": 4, "p5": 2, "p6": 1, "p7": 1}


def test_backbone_is_abstract():
    with pytest.raises(TypeError):
        Backbone()
