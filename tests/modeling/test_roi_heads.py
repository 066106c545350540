"""ROI heads vs torchvision: MultiScaleRoIAlign, RoIHeads inference with converted weights, losses."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import roi_align as tv_roi_align

from detrun.modeling.box_regression import Box2BoxTransform
from detrun.modeling.matcher import Matcher
from detrun.modeling.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from detrun.modeling.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    ROIBranch,
    ROIPooler,
    StandardROIHeads,
)
from detrun.structures import BitMasks, Boxes, ImageList, Instances

LEVELS = ["p2", "p3", "p4", "p5"]
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
CHANNELS, FC, MASK_DIM, NUM_CLASSES = 8, 32, 8, 3


def _features(image_hw, n, seed):
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(n, CHANNELS, math.ceil(image_hw[0] * s), math.ceil(image_hw[1] * s), generator=gen)
        for name, s in zip(LEVELS, SCALES)
    }


def _boxes(n, image_hw, gen, max_size=None):
    """Random boxes inside the image, sizes log-uniform from 2 px to `max_size` (all FPN levels)."""
    h, w = image_hw
    max_size = max_size or max(h, w)
    size = torch.exp(torch.rand(n, 2, generator=gen) * math.log(max_size / 2)) * 2
    size = torch.minimum(size, torch.tensor([w - 1.0, h - 1.0]))
    xy = torch.rand(n, 2, generator=gen) * (torch.tensor([w, h]) - size)
    return torch.cat([xy, xy + size], dim=1)


def _heads(torchvision_mode: bool, **kwargs) -> StandardROIHeads:
    pooler = dict(scales=SCALES, sampling_ratio=2 if torchvision_mode else 0, aligned=not torchvision_mode)
    args = dict(
        num_classes=NUM_CLASSES,
        proposal_matcher=Matcher(thresholds=[0.5], labels=[0, 1]),
        box_in_features=LEVELS,
        box_pooler=ROIPooler(output_size=7, **pooler),
        box_head=FastRCNNConvFCHead(in_channels=CHANNELS, input_size=7, fc_dims=[FC, FC]),
        box_predictor=FastRCNNOutputLayers(
            in_channels=FC,
            num_classes=NUM_CLASSES,
            box2box_transform=Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0)),
            min_box_size=1e-2 if torchvision_mode else 0.0,
        ),
        branches={"mask": ROIBranch(
            in_features=LEVELS,
            pooler=ROIPooler(output_size=14, **pooler),
            head=MaskRCNNConvUpsampleHead(in_channels=CHANNELS, num_classes=NUM_CLASSES, conv_dims=[MASK_DIM] * 5),
        )},
    )
    args.update(kwargs)
    return StandardROIHeads(**args)


def _torchvision_heads(ours: StandardROIHeads) -> RoIHeads:
    """torchvision RoIHeads carrying our weights: background moves from last to first."""
    names = ["0", "1", "2", "3"]
    box_head = TwoMLPHead(CHANNELS * 49, FC)
    box_head.fc6.load_state_dict(ours.box_head.fc1.state_dict())
    box_head.fc7.load_state_dict(ours.box_head.fc2.state_dict())
    predictor = FastRCNNPredictor(FC, NUM_CLASSES + 1)
    with torch.no_grad():
        cls, reg = ours.box_predictor.cls_score, ours.box_predictor.bbox_pred
        predictor.cls_score.weight.copy_(torch.cat([cls.weight[-1:], cls.weight[:-1]]))
        predictor.cls_score.bias.copy_(torch.cat([cls.bias[-1:], cls.bias[:-1]]))
        predictor.bbox_pred.weight.copy_(torch.cat([torch.zeros(4, FC), reg.weight]))
        predictor.bbox_pred.bias.copy_(torch.cat([torch.zeros(4), reg.bias]))
    mask_head = MaskRCNNHeads(CHANNELS, [MASK_DIM] * 4, 1)
    tv_convs = [m for m in mask_head.modules() if isinstance(m, nn.Conv2d)]
    for tv_conv, conv in zip(tv_convs, ours.mask_head.convs):
        tv_conv.load_state_dict(conv.state_dict())
    mask_predictor = MaskRCNNPredictor(MASK_DIM, MASK_DIM, NUM_CLASSES + 1)
    mask_predictor.conv5_mask.load_state_dict(ours.mask_head.deconv.state_dict())
    with torch.no_grad():
        p = ours.mask_head.predictor
        mask_predictor.mask_fcn_logits.weight.copy_(torch.cat([torch.zeros_like(p.weight[:1]), p.weight]))
        mask_predictor.mask_fcn_logits.bias.copy_(torch.cat([torch.zeros(1), p.bias]))
    return RoIHeads(
        MultiScaleRoIAlign(names, 7, 2), box_head, predictor,
        fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25,
        bbox_reg_weights=None, score_thresh=0.05, nms_thresh=0.5, detections_per_img=100,
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2), mask_head=mask_head, mask_predictor=mask_predictor,
    )


def _randomize(module: nn.Module, seed: int, std: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std / math.sqrt(max(p[0].numel(), 1)))


def test_pooler_matches_multiscale_roi_align():
    image_sizes = [(200, 256), (256, 230)]
    feats = _features((256, 256), 2, seed=0)
    gen = torch.Generator().manual_seed(1)
    boxes = [_boxes(300, s, gen) for s in image_sizes]
    pooler = ROIPooler(output_size=7, scales=SCALES, sampling_ratio=2, aligned=False)
    ref = MultiScaleRoIAlign(LEVELS, 7, 2)
    got = pooler(list(feats.values()), [Boxes(b) for b in boxes])
    torch.testing.assert_close(got, ref(feats, boxes, image_sizes), rtol=0, atol=0)


def test_pooler_detectron2_mode_levels():
    feats = list(_features((512, 512), 1, seed=2).values())
    # Sizes 10 (clamped to p2), 112 (p3), 224 (p4: canonical), 1000 (clamped to p5).
    boxes = torch.tensor([[3.0, 4, 13, 14], [50, 60, 162, 172], [100, 50, 324, 274], [0, 0, 1000, 1000]])
    pooler = ROIPooler(output_size=(5, 6), scales=SCALES, sampling_ratio=0, aligned=True)
    got = pooler(feats, [Boxes(boxes)])
    assert got.shape == (4, CHANNELS, 5, 6)
    rois = torch.cat([torch.zeros(4, 1), boxes], dim=1)
    for i, level in enumerate([0, 1, 2, 3]):
        ref = tv_roi_align(feats[level], rois[i : i + 1], (5, 6), SCALES[level], sampling_ratio=0, aligned=True)
        torch.testing.assert_close(got[i : i + 1], ref)
    with pytest.raises(ValueError, match="powers of 1/2"):
        ROIPooler(output_size=7, scales=[1 / 4, 1 / 16], sampling_ratio=0)


def test_inference_matches_torchvision_roi_heads():
    torch.manual_seed(0)
    image_sizes = [(190, 250), (256, 200)]
    ours = _heads(torchvision_mode=True).eval()
    _randomize(ours, seed=3, std=3.0)
    ref = _torchvision_heads(ours).eval()
    feats = _features((256, 256), 2, seed=4)
    gen = torch.Generator().manual_seed(5)
    proposal_boxes = [_boxes(400, s, gen, max_size=160) for s in image_sizes]
    proposals = [
        Instances(s, proposal_boxes=Boxes(b), objectness_logits=torch.zeros(len(b)))
        for s, b in zip(image_sizes, proposal_boxes)
    ]
    with torch.no_grad():
        results, losses = ours(ImageList(torch.zeros(2, 3, 256, 256), image_sizes), feats, proposals)
        expected, _ = ref({str(i): f for i, f in enumerate(feats.values())}, proposal_boxes, image_sizes)
    assert losses == {}
    for got, exp in zip(results, expected):
        assert 20 < len(got) <= 100
        torch.testing.assert_close(got.pred_boxes.tensor, exp["boxes"])
        torch.testing.assert_close(got.scores, exp["scores"])
        torch.testing.assert_close(got.pred_classes, exp["labels"] - 1)
        assert got.pred_masks.shape == (len(got), 1, 28, 28) and got.pred_masks.dtype == torch.float32
        torch.testing.assert_close(got.pred_masks, exp["masks"])


def test_box_losses_match_torchvision_fastrcnn_loss():
    gen = torch.Generator().manual_seed(6)
    predictor = FastRCNNOutputLayers(
        in_channels=FC, num_classes=NUM_CLASSES, box2box_transform=Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0)),
        smooth_l1_beta=1 / 9,
    )
    props, gts, classes = [], [], []
    for n in (30, 20):
        p, g = _boxes(n, (100, 100), gen), _boxes(n, (100, 100), gen)
        c = torch.randint(0, NUM_CLASSES + 1, (n,), generator=gen)  # NUM_CLASSES = background
        props.append(Instances((100, 100), proposal_boxes=Boxes(p), gt_boxes=Boxes(g), gt_classes=c))
        gts.append(g)
        classes.append(c)
    logits = torch.randn(50, NUM_CLASSES + 1, generator=gen)
    deltas = torch.randn(50, 4 * NUM_CLASSES, generator=gen)
    losses = predictor.losses((logits, deltas), props)
    # torchvision layout: background first.
    tv_labels = [torch.where(c == NUM_CLASSES, 0, c + 1) for c in classes]
    tv_logits = torch.cat([logits[:, -1:], logits[:, :-1]], dim=1)
    tv_deltas = torch.cat([torch.zeros(50, 4), deltas], dim=1)
    targets = [BoxCoder((10.0, 10.0, 5.0, 5.0)).encode_single(g, p.proposal_boxes.tensor) for g, p in zip(gts, props)]
    ref_cls, ref_box = fastrcnn_loss(tv_logits, tv_deltas, tv_labels, targets)
    torch.testing.assert_close(losses["loss_cls"], ref_cls)
    torch.testing.assert_close(losses["loss_box_reg"], ref_box)


def test_mask_loss_uses_gt_class_channel():
    head = MaskRCNNConvUpsampleHead(in_channels=CHANNELS, num_classes=NUM_CLASSES, conv_dims=[MASK_DIM] * 2).train()
    # Masks filling the proposal box exactly: every target pixel is 1.
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 8:40] = True
    masks[1, 16:48, 0:32] = True
    inst = Instances(
        (64, 64), proposal_boxes=Boxes(torch.tensor([[8.0, 8, 40, 40], [0, 16, 32, 48]])),
        gt_classes=torch.tensor([2, 0]), gt_masks=BitMasks(masks),
    )
    x = torch.randn(2, CHANNELS, 7, 7)
    loss = head(x, [inst])["loss_mask"]
    logits = head.predictor(head.layers(x))
    expected = F.softplus(-torch.stack([logits[0, 2], logits[1, 0]])).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("agnostic", [False, True])
def test_mask_inference_picks_predicted_class(agnostic):
    head = MaskRCNNConvUpsampleHead(
        in_channels=CHANNELS, num_classes=NUM_CLASSES, conv_dims=[MASK_DIM] * 3, cls_agnostic_mask=agnostic
    ).eval()
    _randomize(head, seed=9, std=3.0)
    dets = [Instances((64, 64), pred_classes=torch.tensor([2, 0, 1])), Instances((64, 64), pred_classes=torch.tensor([1]))]
    x = torch.randn(4, CHANNELS, 7, 7)
    with torch.no_grad():
        head(x, dets)
        logits = head.predictor(head.layers(x))
    channel = torch.zeros(4, dtype=torch.int64) if agnostic else torch.tensor([2, 0, 1, 1])
    expected = logits[torch.arange(4), channel][:, None].sigmoid()
    torch.testing.assert_close(torch.cat([d.pred_masks for d in dets]), expected)
    assert dets[1].pred_masks.shape == (1, 1, 14, 14)


def _gt_instances(image_size, boxes, classes):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    masks = torch.zeros(len(boxes), *image_size, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, y0:y1, x0:x1] = True
    return Instances(image_size, gt_boxes=Boxes(boxes), gt_classes=torch.tensor(classes, dtype=torch.int64),
                     gt_masks=BitMasks(masks))


def test_training_sampling_and_losses_with_empty_image():
    torch.manual_seed(0)
    image_sizes = [(128, 128), (128, 128)]
    heads = _heads(torchvision_mode=False, batch_size_per_image=64).train()
    feats = _features((128, 128), 2, seed=7)
    gen = torch.Generator().manual_seed(8)
    proposals = [
        Instances(s, proposal_boxes=Boxes(_boxes(200, s, gen)), objectness_logits=torch.zeros(200))
        for s in image_sizes
    ]
    targets = [_gt_instances(image_sizes[0], [[10, 10, 60, 70], [70, 30, 120, 100]], [1, 2]),
               _gt_instances(image_sizes[1], [], [])]
    sampled, losses = heads(ImageList(torch.zeros(2, 3, 128, 128), image_sizes), feats, proposals, targets)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask"}
    assert all(torch.isfinite(v) for v in losses.values())
    # Image 0: gt boxes were appended, so there are positives, at most 25 % of 64.
    fg = (sampled[0].gt_classes < NUM_CLASSES).sum()
    assert 2 <= fg <= 16 and len(sampled[0]) == 64
    assert sampled[0].has("gt_boxes") and sampled[0].has("gt_masks")
    # Image 1 (no gt): all sampled proposals are background, no gt fields.
    assert (sampled[1].gt_classes == NUM_CLASSES).all() and not sampled[1].has("gt_boxes")
    sum(losses.values()).backward()
    for module in (heads.box_predictor.cls_score, heads.box_predictor.bbox_pred, heads.mask_head.predictor):
        assert module.weight.grad.abs().sum() > 0

    # A batch where no image has gt: box and mask losses are 0 but stay in the graph.
    heads.zero_grad()
    empty = [_gt_instances(s, [], []) for s in image_sizes]
    _, losses = heads(ImageList(torch.zeros(2, 3, 128, 128), image_sizes), feats, proposals, empty)
    assert losses["loss_box_reg"].item() == 0 and losses["loss_mask"].item() == 0
    assert all(v.requires_grad for v in losses.values())
    sum(losses.values()).backward()
    assert heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


def test_empty_batches_as_detectron2_tests_them():
    """No images at all, or no boxes in any image: empty outputs and zero losses, no crash."""
    pooler = ROIPooler(output_size=7, scales=SCALES, sampling_ratio=0)
    assert pooler([torch.rand(0, CHANNELS, 8, 8) for _ in SCALES], []).shape == (0, CHANNELS, 7, 7)
    no_boxes = [Boxes(torch.zeros(0, 4)) for _ in range(2)]
    assert pooler(list(_features((64, 64), 2, seed=0).values()), no_boxes).shape == (0, CHANNELS, 7, 7)

    predictor = FastRCNNOutputLayers(in_channels=FC, num_classes=NUM_CLASSES,
                                     box2box_transform=Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0)))
    logits = torch.randn(0, NUM_CLASSES + 1, requires_grad=True)
    deltas = torch.randn(0, 4 * NUM_CLASSES, requires_grad=True)
    losses = predictor.losses((logits, deltas), [])
    assert {k: v.item() for k, v in losses.items()} == {"loss_cls": 0.0, "loss_box_reg": 0.0}
    sum(losses.values()).backward()
    assert logits.grad is not None and deltas.grad is not None
    assert predictor.inference((logits, deltas), []) == []


def test_ground_truth_proposals_keep_the_fields_gt_also_has():
    proposals = Instances((20, 20), proposal_boxes=Boxes(torch.tensor([[0.0, 0, 5, 5]])),
                          objectness_logits=torch.tensor([0.3]), foo=torch.tensor([7]), bar=torch.tensor([1.0]))
    gt = Instances((20, 20), gt_boxes=Boxes(torch.tensor([[1.0, 1, 9, 9], [2, 2, 4, 4]])),
                   gt_classes=torch.tensor([0, 1]), foo=torch.tensor([8, 9]))
    [out] = add_ground_truth_to_proposals([gt], [proposals])
    assert out.foo.tolist() == [7, 8, 9]  # the gt rows take gt's values (Detectron2's rule)
    assert not out.has("bar")  # gt has none to give
    assert out.proposal_boxes.tensor[1:].tolist() == gt.gt_boxes.tensor.tolist()
    assert out.objectness_logits[1:].min() > 20


def test_branches_are_checked_and_registered_under_detectron2_names():
    heads = _heads(torchvision_mode=False)
    assert heads.mask_head is heads.branches["mask"].head and heads.mask_pooler is heads.branches["mask"].pooler
    assert any(k.startswith("mask_head.mask_fcn1.") for k in heads.state_dict())
    with pytest.raises(ValueError, match="'box' is the box stage"):
        _heads(torchvision_mode=False, branches={"box": heads.branches["mask"]})
    with pytest.raises(ValueError, match="proposals must be one of"):
        ROIBranch(in_features=LEVELS, pooler=heads.mask_pooler, head=heads.mask_head, proposals="all")
    assert list(_heads(torchvision_mode=False, branches={}).state_dict()) == [
        k for k in heads.state_dict() if not k.startswith("mask_")]
