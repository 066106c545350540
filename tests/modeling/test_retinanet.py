"""RetinaNet's own parts: focal loss vs torchvision's, anchor labelling, the loss normaliser,
candidate decoding, and the build-time checks (feature protocol, head/anchor agreement)."""
import pytest
import torch
from torchvision.ops import sigmoid_focal_loss as tv_focal_loss

from detrun.config import InstantiationError, get_recipe, instantiate
from detrun.modeling import Box2BoxTransform, GeneralizedRCNN, MetaArchitecture, RetinaNet, sigmoid_focal_loss
from detrun.modeling.meta_arch import decode_dense_detections
from detrun.structures import Boxes, Instances


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5)])
def test_focal_loss_matches_torchvision(alpha, gamma):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=gen) * 3
    targets = (torch.rand(50, 7, generator=gen) > 0.8).float()
    expected = tv_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="sum")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma), expected)


def shapes_retinanet(**overrides):
    cfg = get_recipe("shapes_retinanet").model
    cfg.update(overrides)
    return instantiate(cfg)


def test_meta_architectures_share_pre_and_postprocessing():
    for cls in (GeneralizedRCNN, RetinaNet):
        assert issubclass(cls, MetaArchitecture)
        for method in ("forward", "inference", "preprocess_image", "postprocess"):
            assert method not in vars(cls), f"{cls.__name__} redefines {method}"


def test_anchor_labels_follow_the_matcher():
    model = shapes_retinanet()
    anchors = Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 12], [0, 0, 10, 20], [50, 50, 60, 60], [0, 0, 9, 10]]))
    gt = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[0.0, 0, 10, 10]])), gt_classes=torch.tensor([2]))
    empty = Instances((64, 64), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.int64))
    classes, boxes = model.label_anchors(anchors, [gt, empty])
    # IoUs 1.0, 0.83, 0.5 -> foreground (>= 0.5); 0.0 -> background (3 = K); 0.9 -> foreground.
    assert classes.tolist() == [[2, 2, 2, 3, 2], [3, 3, 3, 3, 3]]
    anchors = Boxes(torch.tensor([[0.0, 0, 10, 22], [0, 50, 10, 100]]))  # IoU 0.45 with gt 0; 0.2 with gt 1
    gt_far = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 90, 10, 100]])),
                       gt_classes=torch.tensor([0, 1]))
    classes, _ = model.label_anchors(anchors, [gt_far])
    # Below 0.5 both, but each is its gt's best anchor: low-quality matches make them foreground.
    assert classes.tolist() == [[0, 1]]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0, 10, 10]))


def test_loss_normaliser_is_a_moving_average_of_foreground_anchors():
    model = shapes_retinanet().train()
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    gt = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[8.0, 8, 40, 40]])), gt_classes=torch.tensor([1]))
    images = model.preprocess_image([{"image": image}])
    anchors, predictions = model.run_head(images)
    classes, _ = model.label_anchors(Boxes.cat(anchors), [gt])
    num_fg = int(((classes >= 0) & (classes < 3)).sum())
    assert num_fg > 0
    losses = model([{"image": image, "instances": gt}])
    assert model.loss_normalizer.item() == pytest.approx(0.9 * 100 + 0.1 * num_fg)
    assert set(losses) == {"loss_cls", "loss_box_reg"} and all(v.isfinite() for v in losses.values())
    assert "loss_normalizer" in model.state_dict()  # checkpointed: a resumed run continues the average
    empty = Instances((64, 64), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.int64))
    losses = model([{"image": image, "instances": empty}])
    assert losses["loss_box_reg"].item() == 0.0 and losses["loss_cls"].item() > 0


def test_decoding_thresholds_takes_topk_per_level_and_suppresses():
    coder = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    anchors = [Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])),
               Boxes(torch.tensor([[0.0, 0, 40, 40]]))]
    scores = [torch.tensor([[0.9, 0.01], [0.8, 0.7], [0.3, 0.04]]), torch.tensor([[0.5, 0.6]])]
    deltas = [torch.zeros(3, 4), torch.zeros(1, 4)]
    out = decode_dense_detections(anchors, scores, deltas, (25, 100), box2box_transform=coder, score_thresh=0.05,
                                  topk_candidates=3, nms_thresh=0.5, max_detections=10)
    # Level 0 keeps its top 3 of the 4 candidates above 0.05 (0.9, 0.8, 0.7; not 0.3); (0.8, class 0)
    # is suppressed by (0.9, class 0) on the same box; classes are suppressed separately.
    assert out.scores.tolist() == pytest.approx([0.9, 0.7, 0.6, 0.5])
    assert out.pred_classes.tolist() == [0, 1, 1, 0]
    torch.testing.assert_close(out.pred_boxes.tensor[2], torch.tensor([0.0, 0, 40, 25]))  # clipped to the image
    out = decode_dense_detections(anchors, scores, deltas, (25, 100), box2box_transform=coder, score_thresh=0.95,
                                  topk_candidates=3, nms_thresh=0.5, max_detections=10)
    assert len(out) == 0 and out.pred_boxes.tensor.shape == (0, 4)


def test_parts_disagreeing_with_the_backbone_fail_at_build():
    cfg = get_recipe("shapes_retinanet").model
    cfg.head_in_features = ["p3", "p4", "p5", "p6", "p8"]
    with pytest.raises(InstantiationError, match=r"head_in_features = .* names \['p8'\].*outputs \['p3'"):
        instantiate(cfg)
    cfg = get_recipe("shapes_retinanet").model
    cfg.anchor_generator.strides = [8, 16, 32, 64, 64]
    with pytest.raises(InstantiationError, match=r"anchor_generator.strides = \[8, 16, 32, 64, 64\].*\[8, 16, 32, 64, 128\]"):
        instantiate(cfg)
    cfg = get_recipe("shapes_retinanet").model
    cfg.head.num_anchors = 3
    with pytest.raises(InstantiationError, match="head predicts 3 anchors per cell"):
        instantiate(cfg)


def test_inference_outputs_follow_the_contract():
    model = shapes_retinanet(test_score_thresh=0.0).eval()
    with torch.no_grad():
        outputs = model([{"image": torch.randint(0, 256, (3, 70, 90), dtype=torch.uint8), "height": 140, "width": 45}])
    (out,) = outputs
    instances = out["instances"]
    assert instances.image_size == (140, 45) and 0 < len(instances) <= 50
    assert instances.pred_classes.dtype == torch.int64 and instances.pred_classes.max() < 3
    assert torch.all(instances.scores[:-1] >= instances.scores[1:])
    assert instances.pred_boxes.tensor[:, 2].max() <= 45 and instances.pred_boxes.tensor[:, 3].max() <= 140
