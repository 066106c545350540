"""RPN vs torchvision's RegionProposalNetwork with the same weights; RPN losses."""
import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList as TVImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from detrun.modeling.box_regression import Box2BoxTransform
from detrun.modeling.matcher import Matcher
from detrun.modeling.proposal_generator import RPN, DefaultAnchorGenerator, StandardRPNHead
from detrun.structures import Boxes, ImageList, Instances

CHANNELS = 16
LEVELS = ["p2", "p3", "p4", "p5", "p6"]


def _build(torchvision_mode: bool, **kwargs) -> RPN:
    defaults = dict(
        in_features=LEVELS,
        head=StandardRPNHead(in_channels=CHANNELS, num_anchors=3),
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=[[0.5, 1.0, 2.0]],
            strides=None if torchvision_mode else [4, 8, 16, 32, 64],
            round_anchors=torchvision_mode,
        ),
        anchor_matcher=Matcher(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
    )
    if torchvision_mode:
        defaults.update(min_box_size=1e-3, nms_on_sigmoid=True, post_nms_topk=(2000, 1000))
    defaults.update(kwargs)
    return RPN(**defaults)


def _inputs(image_hw, image_sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = len(image_sizes)
    feats = {
        name: torch.randn(n, CHANNELS, math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s), generator=gen)
        for name, s in zip(LEVELS, [4, 8, 16, 32, 64])
    }
    return ImageList(torch.zeros(n, 3, *image_hw), image_sizes), feats


def _torchvision_rpn(ours: RPN) -> RegionProposalNetwork:
    head = RPNHead(CHANNELS, 3)
    head.conv[0][0].load_state_dict(ours.rpn_head.conv.state_dict())
    head.cls_logits.load_state_dict(ours.rpn_head.objectness_logits.state_dict())
    head.bbox_pred.load_state_dict(ours.rpn_head.anchor_deltas.state_dict())
    anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    return RegionProposalNetwork(
        anchors, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
        pre_nms_top_n=dict(training=2000, testing=1000), post_nms_top_n=dict(training=2000, testing=1000),
        nms_thresh=0.7,
    )


def _randomize(rpn: RPN, seed: int) -> None:
    # Larger weights than the init, so logits spread (and some saturate) and deltas move boxes.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rpn.rpn_head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.15)


@pytest.mark.parametrize("image_sizes", [[(200, 270), (180, 272)], [(416, 600)]])
def test_proposals_match_torchvision(image_sizes):
    image_hw = (max(h for h, _ in image_sizes), max(w for _, w in image_sizes))
    image_hw = (math.ceil(image_hw[0] / 32) * 32, math.ceil(image_hw[1] / 32) * 32)
    ours = _build(torchvision_mode=True).eval()
    _randomize(ours, 1)
    ref = _torchvision_rpn(ours).eval()
    images, feats = _inputs(image_hw, image_sizes)
    with torch.no_grad():
        proposals, losses = ours(images, feats)
        expected, _ = ref(TVImageList(images.tensor, image_sizes), dict(feats))
    assert losses == {}
    for got, exp, size in zip(proposals, expected, image_sizes):
        assert got.image_size == size
        assert len(got) > 100
        torch.testing.assert_close(got.proposal_boxes.tensor, exp, rtol=0, atol=0)
        assert (got.objectness_logits[:-1] >= got.objectness_logits[1:]).all()


def test_detectron2_mode_proposals_are_valid():
    rpn = _build(torchvision_mode=False, post_nms_topk=(100, 50)).eval()
    _randomize(rpn, 2)
    images, feats = _inputs((128, 192), [(120, 190), (128, 150)], seed=3)
    with torch.no_grad():
        proposals, _ = rpn(images, feats)
    for p, (h, w) in zip(proposals, images.image_sizes):
        b = p.proposal_boxes.tensor
        assert 0 < len(p) <= 50
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= h).all()
        assert p.proposal_boxes.nonempty().all()


def _gt(boxes, size):
    return Instances(size, gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4)))


def test_losses_match_torchvision_without_sampling():
    # Sampling every anchor makes both deterministic; the losses then differ only by the
    # normalization (Detectron2: batch_size_per_image * images; torchvision: sampled anchors).
    big = 10**9
    ours = _build(torchvision_mode=True, batch_size_per_image=big, smooth_l1_beta=1 / 9).train()
    _randomize(ours, 4)
    ref = _torchvision_rpn(ours).train()
    ref.fg_bg_sampler.batch_size_per_image = big
    sizes = [(96, 128), (90, 120)]
    images, feats = _inputs((96, 128), sizes, seed=5)
    gt = [_gt([[10, 10, 50, 60], [60, 20, 120, 90]], sizes[0]), _gt([[5, 40, 40, 85]], sizes[1])]
    _, losses = ours(images, feats, gt)
    _, ref_losses = ref(TVImageList(images.tensor, sizes), dict(feats), [{"boxes": g.gt_boxes.tensor} for g in gt])
    labels, _ = ours.label_and_sample_anchors(ours.anchor_generator(list(feats.values()), (96, 128)), gt)
    num_sampled = int((labels >= 0).sum())
    scale = big * len(sizes) / num_sampled
    torch.testing.assert_close(losses["loss_rpn_cls"] * scale, ref_losses["loss_objectness"])
    torch.testing.assert_close(losses["loss_rpn_loc"] * scale, ref_losses["loss_rpn_box_reg"])


def test_losses_with_empty_image_backprop():
    torch.manual_seed(0)
    rpn = _build(torchvision_mode=False).train()
    sizes = [(96, 128), (96, 128)]
    images, feats = _inputs((96, 128), sizes, seed=6)
    gt = [_gt([[10, 10, 50, 60]], sizes[0]), _gt([], sizes[1])]
    proposals, losses = rpn(images, feats, gt)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) and v.requires_grad for v in losses.values())
    sum(losses.values()).backward()
    assert rpn.rpn_head.objectness_logits.weight.grad.abs().sum() > 0
    assert rpn.rpn_head.anchor_deltas.weight.grad.abs().sum() > 0
    assert len(proposals[0]) <= 1000 and not proposals[0].objectness_logits.requires_grad
    # Only empty images: localization loss is an exact 0, still in the graph.
    _, losses = rpn(images, feats, [_gt([], s) for s in sizes])
    assert losses["loss_rpn_loc"].item() == 0 and losses["loss_rpn_loc"].requires_grad
    # 256 sampled negatives per image, normalized by 256 * 2: cls loss ~ log(2) at zero logits.
    assert 0.3 < losses["loss_rpn_cls"].item() < 1.5


def test_head_anchor_count_mismatch_is_explained():
    with pytest.raises(ValueError, match="anchors per cell"):
        _build(torchvision_mode=False, head=StandardRPNHead(in_channels=CHANNELS, num_anchors=9))
