"""Detectron2 checkpoints load into `mask_rcnn_R50` by Detectron2's documented parameter names.

Detectron2 itself isn't installed, so the test writes the files: the parameter names come from
Detectron2's naming scheme (its ResNet/FPN/RPN/StandardROIHeads modules and the Caffe2 names
its `c2_model_loading` converts), spelled out below independently of detrun's code. A model-zoo
`.pkl` (numpy arrays under "model"), a training `.pth` and MSRA's Caffe2-named ImageNet
`R-50.pkl` must each load completely and give the same detections as the weights they hold.
"""
import pickle

import numpy as np
import pytest
import torch

from detrun.checkpoint import load_weights
from detrun.config import get_recipe, instantiate

R50_BLOCKS = {2: 3, 3: 4, 4: 6, 5: 3}
NORM = ["norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"]
C2_NORM = ["bn_s", "bn_b", "bn_rm", "bn_riv"]
C2_BRANCH = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}


def detectron2_resnet_names():
    """(Detectron2 name, Caffe2 name) of every ResNet-50 tensor (stem, bottlenecks, projections)."""
    pairs = [("stem.conv1.weight", "conv1_w")]
    pairs += [(f"stem.conv1.{n}", f"res_conv1_{c}") for n, c in zip(NORM, C2_NORM)]
    for stage, blocks in R50_BLOCKS.items():
        for b in range(blocks):
            for conv in ["conv1", "conv2", "conv3"] + (["shortcut"] if b == 0 else []):
                c2 = f"res{stage}_{b}_{C2_BRANCH[conv]}"
                pairs.append((f"res{stage}.{b}.{conv}.weight", f"{c2}_w"))
                pairs += [(f"res{stage}.{b}.{conv}.{n}", f"{c2}_{c}") for n, c in zip(NORM, C2_NORM)]
    return pairs


def detectron2_mask_rcnn_names():
    """Every tensor name of Detectron2's mask_rcnn_R_50_FPN (GeneralizedRCNN + FPN + RPN + StandardROIHeads)."""
    names = [f"backbone.bottom_up.{d2}" for d2, _ in detectron2_resnet_names()]
    wb = ["weight", "bias"]
    names += [f"backbone.fpn_{kind}{k}.{p}" for k in range(2, 6) for kind in ("lateral", "output") for p in wb]
    names += [f"proposal_generator.rpn_head.{layer}.{p}" for layer in ("conv", "objectness_logits", "anchor_deltas")
              for p in wb]
    names += [f"roi_heads.{layer}.{p}" for layer in ("box_head.fc1", "box_head.fc2", "box_predictor.cls_score",
                                                     "box_predictor.bbox_pred") for p in wb]
    names += [f"roi_heads.mask_head.{layer}.{p}" for layer in
              ("mask_fcn1", "mask_fcn2", "mask_fcn3", "mask_fcn4", "deconv", "predictor") for p in wb]
    return names


def build(**weights):
    cfg = get_recipe("mask_rcnn_R50").model
    cfg.roi_heads.box_predictor.test_score_thresh = 0.0  # random heads: keep every detection to compare
    cfg.roi_heads.box_predictor.test_topk_per_image = 20
    cfg.proposal_generator.post_nms_topk = [1000, 100]
    cfg.update(weights)
    return instantiate(cfg).eval()


@pytest.fixture(scope="module")
def weights():
    """Detectron2-named random weights (positive variances, small residual branches)."""
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build().state_dict().items()}
    state = {}
    for name in detectron2_mask_rcnn_names():
        shape = shapes[name]
        if name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith("norm.weight"):
            state[name] = torch.rand(shape, generator=g) * 0.3
        else:
            fan_in = max(1, int(np.prod(shape[1:])))
            state[name] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


@pytest.fixture(scope="module")
def reference(weights):
    """Detections of a model whose tensors are set by name, without any checkpoint code."""
    model = build()
    with torch.no_grad():
        for name, value in weights.items():
            module, _, leaf = name.rpartition(".")
            getattr(model.get_submodule(module), leaf).copy_(value)
    image = torch.randint(0, 256, (3, 120, 152), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    inputs = [{"image": image}]
    with torch.no_grad():
        out = model(inputs)[0]["instances"]
    assert len(out) == 20
    return inputs, out


def assert_same_detections(model, reference):
    inputs, expected = reference
    with torch.no_grad():
        out = model(inputs)[0]["instances"]
    torch.testing.assert_close(out.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=0, atol=0)
    torch.testing.assert_close(out.scores, expected.scores, rtol=0, atol=0)
    assert torch.equal(out.pred_classes, expected.pred_classes) and torch.equal(out.pred_masks, expected.pred_masks)


def test_detrun_names_are_detectron2_names():
    with torch.device("meta"):
        keys = set(build().state_dict())
    assert keys == set(detectron2_mask_rcnn_names())


def test_model_zoo_pkl(tmp_path, weights, reference):
    arrays = {k: v.numpy() for k, v in weights.items()}
    path = tmp_path / "model_final_f10217.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "Detectron2 Model Zoo"}, protocol=2))
    model = build(weights=str(path))  # model.weights=PATH in the recipe
    assert_same_detections(model, reference)
    report = load_weights(build(), path, strict=True, verbose=False)
    assert "Detectron2" in report.source and len(report.loaded) == len(weights)


def test_training_pth(tmp_path, weights, reference):
    path = tmp_path / "model_0089999.pth"
    torch.save({"model": weights, "optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "iteration": 89999},
               path)
    assert_same_detections(build(weights=str(path)), reference)


def test_msra_imagenet_pkl(tmp_path, weights):
    """Caffe2-named ImageNet ResNet-50 (folded BN: scale and shift only), as in ImageNetPretrained/MSRA/R-50.pkl."""
    blobs = {c2: weights[f"backbone.bottom_up.{d2}"].numpy() for d2, c2 in detectron2_resnet_names()
             if not c2.endswith(("_rm", "_riv"))}
    blobs.update(fc1000_w=np.zeros((1000, 2048), np.float32), fc1000_b=np.zeros(1000, np.float32))
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps(blobs, protocol=2))
    model = build()
    report = load_weights(model, path, verbose=False)
    assert report.unexpected == [] and report.mismatched == [] and report.ignored == ["fc1000_w", "fc1000_b"]
    assert all(not k.startswith("backbone.bottom_up.") for k in report.missing)
    state = model.state_dict()
    for d2, c2 in detectron2_resnet_names():
        key = f"backbone.bottom_up.{d2}"
        if c2.endswith("_rm"):
            assert torch.all(state[key] == 0)
        elif c2.endswith("_riv"):
            assert torch.all(state[key] == 1)
        else:
            assert torch.equal(state[key], weights[key]), key
