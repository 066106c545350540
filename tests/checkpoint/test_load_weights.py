"""load_weights: every supported format lands on the right parameters; misfits fail clearly.

The Caffe2 and Detectron2 files are written by the tests from the documented naming schemes
(Detectron2's `c2_model_loading` conventions: ``res2_0_branch2a_bn_s`` ...), not from detrun's
converter, so a wrong rule in the converter shows up as a wrong or missing tensor.
"""
import logging
import pickle
import re

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from detrun.checkpoint import CheckpointError, load_weights
from detrun.checkpoint.load import load_report
from detrun.modeling import FPN, FrozenBatchNorm2d, LastLevelMaxPool, ResNet

C2_BRANCH = {"shortcut": "branch1", "conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}


def tiny_detector(depth=50, num_classes=3, norm="FrozenBN", stride_in_1x1=True):
    """A detector-shaped module: FPN backbone (keys backbone.bottom_up.*, backbone.fpn_*) and a class predictor."""
    bottom_up = ResNet(depth=depth, width=8, norm=norm, freeze_at=0, stride_in_1x1=stride_in_1x1)
    fpn = FPN(bottom_up=bottom_up, in_features=["res2", "res3", "res4", "res5"], out_channels=16,
              top_block=LastLevelMaxPool())
    predictor = nn.ModuleDict({"cls_score": nn.Linear(16, num_classes + 1)})
    return nn.ModuleDict({"backbone": fpn, "roi_heads": nn.ModuleDict({"box_predictor": predictor})})


def randomized(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
    return model


def to_c2_name(name):
    """detrun ResNet name -> Caffe2 blob name, written from the Caffe2/Detectron naming scheme."""
    suffix = {"weight": "w", "bias": "b", "norm.weight": "bn_s", "norm.bias": "bn_b",
              "norm.running_mean": "bn_rm", "norm.running_var": "bn_riv"}
    m = re.match(r"stem\.conv1\.(.+)$", name)
    if m:
        return "conv1_w" if m[1] == "weight" else f"res_conv1_{suffix[m[1]]}"
    m = re.match(r"res(\d)\.(\d+)\.(shortcut|conv\d)\.(.+)$", name)
    return f"res{m[1]}_{m[2]}_{C2_BRANCH[m[3]]}_{suffix[m[4]]}"


def assert_loaded(model, reference_state, prefix=""):
    state = model.state_dict()
    for key, value in reference_state.items():
        torch.testing.assert_close(state[prefix + key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("under_blobs", [False, True])
def test_caffe2_imagenet_pkl(tmp_path, under_blobs):
    source = randomized(ResNet(depth=50, width=8, freeze_at=0))
    blobs = {}
    for key, value in source.state_dict().items():
        if not key.endswith(("running_mean", "running_var")):  # MSRA files fold BN into scale/shift
            blobs[to_c2_name(key)] = value.numpy()
    blobs["fc1000_w"] = np.zeros((1000, 2048), np.float32)
    blobs["fc1000_b"] = np.zeros(1000, np.float32)
    blobs["res2_0_branch2a_w_momentum"] = np.zeros(1, np.float32)
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs} if under_blobs else blobs, protocol=2))

    model = tiny_detector()
    report = load_weights(model, path)
    assert "Caffe2" in report.source
    assert sorted(report.ignored) == ["fc1000_b", "fc1000_w", "res2_0_branch2a_w_momentum"]
    assert report.unexpected == [] and report.mismatched == []
    assert all(k.startswith(("backbone.fpn", "roi_heads")) for k in report.missing)
    folded = {k: v for k, v in source.state_dict().items() if not k.endswith(("running_mean", "running_var"))}
    assert_loaded(model, folded, prefix="backbone.bottom_up.")
    norm = model["backbone"].bottom_up.res3[1].conv2.norm
    assert isinstance(norm, FrozenBatchNorm2d)
    assert torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1)


def test_detectron2_model_zoo_pkl(tmp_path):
    source = randomized(tiny_detector(), seed=1)
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}
    # Detectron2 files may carry non-weights that belong to the config.
    arrays["pixel_mean"] = np.zeros((3, 1, 1), np.float32)
    arrays["proposal_generator.anchor_generator.cell_anchors.0"] = np.zeros((3, 4), np.float32)
    path = tmp_path / "model_final_f10217.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "Detectron2 Model Zoo"}, protocol=2))
    model = tiny_detector()
    report = load_weights(model, path, verbose=False)
    assert "Detectron2 Model Zoo" in report.source
    assert report.missing == [] and report.unexpected == [] and len(report.ignored) == 2
    assert_loaded(model, source.state_dict())


def test_detectron2_training_pth_with_ddp_prefix(tmp_path):
    source = randomized(tiny_detector(norm="BN"), seed=2)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "model_0004999.pth"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.02}]},
                "scheduler": {"last_epoch": 4999}, "iteration": 4999}, path)
    model = tiny_detector(norm="BN")
    report = load_weights(model, path, strict=True, verbose=False)
    assert len(report.loaded) == len(model.state_dict())  # BN step counters included
    assert_loaded(model, source.state_dict())


def test_detrun_checkpoint_and_bare_trunk(tmp_path):
    source = randomized(tiny_detector(), seed=3)
    torch.save({"model": source.state_dict(), "format": "detrun", "iteration": 10}, tmp_path / "model_final.pth")
    model = tiny_detector()
    assert load_weights(model, tmp_path / "model_final.pth", verbose=False).source == "detrun checkpoint"
    assert_loaded(model, source.state_dict())
    # A bare Detectron2-named ResNet (stem.*, res2.*) goes under the model's ResNet.
    trunk = source["backbone"].bottom_up.state_dict()
    torch.save(trunk, tmp_path / "r50_d2.pth")
    model = tiny_detector()
    load_weights(model, tmp_path / "r50_d2.pth", verbose=False)
    assert_loaded(model, trunk, prefix="backbone.bottom_up.")


def test_torchvision_imagenet_resnet_into_detector(tmp_path, capsys):
    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    model = nn.ModuleDict({"backbone": FPN(bottom_up=ResNet(depth=18, stride_in_1x1=False, freeze_at=0),
                                           in_features=["res4", "res5"], out_channels=32)})
    report = load_weights(model, tmp_path / "resnet18-f37072fd.pth")
    out = capsys.readouterr().out
    assert "torchvision ImageNet ResNet" in out and "ignored     fc.{weight,bias}" in out
    assert "missing     backbone.fpn_lateral4.{weight,bias}" in out
    assert len(report.loaded) == sum(not k.endswith("num_batches_tracked") for k in tv.state_dict()) - 2
    state = model.state_dict()
    torch.testing.assert_close(state["backbone.bottom_up.res3.0.shortcut.norm.running_var"],
                               tv.layer2[0].downsample[1].running_var)
    torch.testing.assert_close(state["backbone.bottom_up.res5.1.conv2.weight"], tv.layer4[1].conv2.weight)


def test_finetuning_new_classes_skips_predictor(tmp_path):
    torch.save({"model": randomized(tiny_detector(num_classes=80)).state_dict(), "format": "detrun"},
               tmp_path / "coco.pth")
    model = tiny_detector(num_classes=3)
    before = model["roi_heads"]["box_predictor"]["cls_score"].weight.clone()
    report = load_weights(model, tmp_path / "coco.pth", verbose=False)
    assert report.mismatched == [("roi_heads.box_predictor.cls_score.weight", (81, 16), (4, 16)),
                                 ("roi_heads.box_predictor.cls_score.bias", (81,), (4,))]
    assert torch.equal(model["roi_heads"]["box_predictor"]["cls_score"].weight, before)
    with pytest.raises(CheckpointError, match="coco.pth.*strict.*2 shape-mismatched keys"):
        load_weights(tiny_detector(num_classes=3), tmp_path / "coco.pth", strict=True, verbose=False)


def test_predictors_left_at_initialisation_are_reported(tmp_path, caplog):
    """A predictor the file has but can't fill warns (fine-tuning); one the file lacks entirely
    (a backbone initialisation) doesn't. Either way `untrained_predictors` lists it."""
    source = randomized(tiny_detector(num_classes=80))
    torch.save({"model": source.state_dict(), "format": "detrun"}, tmp_path / "coco.pth")
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    torch.save({"model": backbone, "format": "detrun"}, tmp_path / "backbone.pth")
    with caplog.at_level(logging.WARNING, logger="detrun.checkpoint"):
        report = load_weights(tiny_detector(num_classes=3), tmp_path / "coco.pth", verbose=False)
    assert report.untrained_predictors() == {"roi_heads.box_predictor.cls_score": ((81,), (4,))}
    assert caplog.text.count("predictor layers") == 1
    assert "roi_heads.box_predictor.cls_score (file (81,) vs model (4,))" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="detrun.checkpoint"):
        model = tiny_detector(num_classes=3)
        report = load_weights(model, tmp_path / "backbone.pth", verbose=False)
    assert caplog.text == ""
    assert report.untrained_predictors() == {"roi_heads.box_predictor.cls_score": (None, (4,))}
    assert load_report(model) is report


@pytest.mark.parametrize("file_depth, model_depth, expected", [
    (50, 101, r"missing keys: backbone\.bottom_up\.res4\.6\."),
    (101, 50, r"unexpected keys: backbone\.bottom_up\.res4\.6\."),
    (18, 50, r"shape-mismatched keys: backbone\.bottom_up\.res2\.0\.conv1\.weight \(file \(8, 8, 3, 3\) vs model"),
])
def test_wrong_depth_is_a_clear_error(tmp_path, file_depth, model_depth, expected):
    with torch.device("meta"):
        meta = tiny_detector(depth=file_depth)
    state = {k: torch.zeros(v.shape) for k, v in meta.state_dict().items()}
    torch.save({"model": state, "format": "detrun"}, tmp_path / f"r{file_depth}.pth")
    with pytest.raises(CheckpointError, match=rf"r{file_depth}\.pth.*different backbone.*{expected}"):
        load_weights(tiny_detector(depth=model_depth), tmp_path / f"r{file_depth}.pth", verbose=False)


def test_unrelated_weights_are_a_clear_error(tmp_path):
    torch.save(nn.Sequential(nn.Linear(3, 4)).state_dict(), tmp_path / "mlp.pth")
    with pytest.raises(CheckpointError, match=r"mlp\.pth.*none of its tensors match.*File keys: 0\.weight"):
        load_weights(tiny_detector(), tmp_path / "mlp.pth", verbose=False)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"resnet18\.pth.*model has no ResNet"):
        load_weights(nn.Sequential(nn.Conv2d(3, 4, 1)), tmp_path / "resnet18.pth", verbose=False)
