"""Cascade R-CNN's ROI heads: Detectron2's parameter names, stage re-labelling without sampling,
the gradient scale on shared features, and inference that averages the stages' class scores."""
import pytest
import torch
from test_detectron2_format import detectron2_mask_rcnn_names

from detrun.checkpoint import load_weights
from detrun.config import InstantiationError, get_recipe, instantiate
from detrun.modeling import CascadeROIHeads
from detrun.structures import BitMasks, Boxes, ImageList, Instances


def detectron2_cascade_names():
    """Detectron2's cascade_mask_rcnn_R_50_FPN names: Mask R-CNN's with the box head and predictor
    replaced by one ``box_head.{k}`` / ``box_predictor.{k}`` per stage."""
    names = [n for n in detectron2_mask_rcnn_names()
             if not n.startswith(("roi_heads.box_head.", "roi_heads.box_predictor."))]
    names += [f"roi_heads.{part}.{k}.{layer}.{p}" for k in range(3)
              for part, layers in (("box_head", ("fc1", "fc2")), ("box_predictor", ("cls_score", "bbox_pred")))
              for layer in layers for p in ("weight", "bias")]
    return names


def test_detectron2_cascade_checkpoint_loads(tmp_path):
    model = instantiate(get_recipe("cascade_mask_rcnn_R50").model)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    names = detectron2_cascade_names()
    assert set(names) == {k for k in shapes if not k.endswith("num_batches_tracked")}
    assert shapes["roi_heads.box_predictor.2.bbox_pred.weight"][0] == 4  # class-agnostic
    state = {k: torch.randn(shapes[k]) for k in names}
    torch.save({"model": state}, tmp_path / "model_final.pth")
    report = load_weights(model, tmp_path / "model_final.pth", verbose=False)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    weights = [p.box2box_transform.weights for p in model.roi_heads.box_predictor]
    assert weights == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    assert [m.thresholds[1] for m in model.roi_heads.proposal_matchers] == [0.5, 0.6, 0.7]


@pytest.fixture
def heads():
    torch.manual_seed(0)
    cfg = get_recipe("shapes_cascade_mask_rcnn")
    cfg.model.roi_heads.batch_size_per_image = 32
    return instantiate(cfg.model).roi_heads


def features(size=64, channels=64):
    gen = torch.Generator().manual_seed(1)
    return {f"p{k}": torch.randn(1, channels, size // 2 ** k, size // 2 ** k, generator=gen) for k in range(2, 6)}


def test_training_relabels_each_stage_without_sampling(heads):
    heads.train()
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 8:40] = masks[1, 20:50, 30:60] = True
    gt = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[8.0, 8, 40, 40], [30, 20, 60, 50]])),
                   gt_classes=torch.tensor([0, 2]), gt_masks=BitMasks(masks))
    proposals = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[9.0, 9, 41, 38], [0, 0, 10, 10]])),
                          objectness_logits=torch.zeros(2))
    seen = []
    original = heads._run_stage
    heads._run_stage = lambda feats, props, k: seen.append(props) or original(feats, props, k)
    _, losses = heads(ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)]), features(), [proposals], [gt])
    assert set(losses) == {f"loss_{kind}_stage{k}" for kind in ("cls", "box_reg") for k in range(3)} | {"loss_mask"}
    # Stage 0: the 2 proposals + 2 gt boxes, all sampled (batch 32). Later stages: every box of the
    # stage before (none is empty), re-labelled at their own IoU, not re-sampled.
    assert [len(p[0]) for p in seen] == [4, 4, 4]
    assert all(p[0].has("gt_classes") and p[0].has("gt_boxes") for p in seen[1:])
    sum(losses.values()).backward()
    assert all(h.fc1.weight.grad is not None for h in heads.box_head)


def test_stage_gradients_are_scaled_by_one_over_the_stage_count(heads):
    from detrun.modeling.roi_heads.cascade import _ScaleGradient

    x = torch.ones(3, requires_grad=True)
    _ScaleGradient.apply(x, 1 / 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 1 / 3))


def test_inference_averages_stage_scores_and_uses_last_stage_boxes(heads):
    heads.eval()
    proposals = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[8.0, 8, 40, 40], [30, 20, 60, 50]])),
                          objectness_logits=torch.zeros(2))
    for predictor in heads.box_predictor:
        predictor.test_score_thresh = 0.0
    feats = features()
    with torch.no_grad():
        (detections,), _ = heads(ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)]), feats, [proposals])
        stage_boxes, probs = [proposals], []
        for k in range(3):
            predictions = heads._run_stage(feats, [stage_boxes[-1]], k)
            probs.append(heads.box_predictor[k].predict_probs(predictions, [stage_boxes[-1]])[0])
            boxes = heads.box_predictor[k].predict_boxes(predictions, [stage_boxes[-1]])[0]
            stage_boxes.append(Instances((64, 64), proposal_boxes=Boxes(boxes.clamp(0, 64))))
    expected = heads.box_predictor[2].detections(boxes, sum(probs) / 3, (64, 64))
    torch.testing.assert_close(detections.scores, expected.scores)
    torch.testing.assert_close(detections.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert detections.has("pred_masks")


def test_per_class_regression_is_refused():
    cfg = get_recipe("shapes_cascade_mask_rcnn").model
    cfg.roi_heads.box_predictors[1].cls_agnostic_bbox_reg = False
    with pytest.raises(InstantiationError, match=r"box_predictors \[1\] need cls_agnostic_bbox_reg=True"):
        instantiate(cfg)
    assert issubclass(CascadeROIHeads, torch.nn.Module)
