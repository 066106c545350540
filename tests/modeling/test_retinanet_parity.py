"""torchvision's RetinaNet and detrun's `retinanet_R50_torchvision` give the same detections from
the same weights: ResNet, FPN with P6/P7 from P5, ratio-major rounded anchors, the head towers,
candidate selection, decoding and NMS, and the checkpoint conversion, together.

As in test_torchvision_parity.py, torchvision's model gets seeded random weights whose scales
make the head score many anchors above the 0.05 threshold, its transform runs at scale 1, and
its state dict is loaded into detrun's model with `load_weights`. Then detrun's Detectron2-named
RetinaNet checkpoints load with no missing or unexpected keys.
"""
import pytest
import torch
from test_torchvision_parity import make_images, randomize_torchvision_
from torchvision.models.detection import retinanet_resnet50_fpn

from detrun.checkpoint import load_weights
from detrun.config import get_recipe, instantiate
from detrun.structures import Boxes, pairwise_iou

NUM_CLASSES = 91  # torchvision's COCO layout (category ids; sigmoid classes, no background logit)
DETECTIONS = 60
CANDIDATES = 300  # per level, the same on both sides (default 1000): what is compared stays the same


@pytest.fixture(scope="module")
def torchvision_retinanet():
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES).eval()
    model.detections_per_img = DETECTIONS
    model.topk_candidates = CANDIDATES
    randomize_torchvision_(model, seed=3)
    return model


def build_detrun(path, num_classes=NUM_CLASSES, recipe="retinanet_R50_torchvision"):
    cfg = get_recipe(recipe).model
    cfg.num_classes = num_classes
    cfg.max_detections_per_image = DETECTIONS
    cfg.test_topk_candidates = CANDIDATES
    cfg.weights = str(path)
    return instantiate(cfg).eval()


def run_torchvision(model, image):
    h, w = image.shape[-2:]
    model.transform.min_size = (min(h, w),)
    model.transform.max_size = max(h, w)
    with torch.no_grad():
        return model([image.float() / 255])[0]


def assert_same_detections(boxes, scores, labels, got):
    """`got` (Instances) holds the same detections as (boxes, scores, labels), in any order."""
    assert len(got) == len(boxes)
    iou = pairwise_iou(Boxes(boxes), got.pred_boxes)
    iou[labels[:, None] != got.pred_classes[None, :]] = 0
    # Boxes clipped flat onto the image border have IoU 0 with everything: match them by coordinates.
    same = (got.pred_boxes.tensor[None] - boxes[:, None]).abs().amax(dim=2) < 2e-3
    iou[same & (labels[:, None] == got.pred_classes[None, :])] = 1.0
    best, index = iou.max(dim=1)
    assert torch.all(best > 0.999) and len(set(index.tolist())) == len(index)
    torch.testing.assert_close(got.pred_boxes.tensor[index], boxes, rtol=1e-4, atol=2e-3)
    torch.testing.assert_close(got.scores[index], scores, rtol=1e-4, atol=1e-5)


def test_retinanet_matches_torchvision(tmp_path, torchvision_retinanet):
    torch.save(torchvision_retinanet.state_dict(), tmp_path / "tv.pth")
    ours = build_detrun(tmp_path / "tv.pth")
    for image in make_images(seed=4):
        h, w = image.shape[-2:]
        expected = run_torchvision(torchvision_retinanet, image)
        inputs = [{"image": image, "height": h, "width": w}]
        with torch.no_grad():
            raw = ours.inference(inputs, do_postprocess=False)[0]["instances"]
            final = ours(inputs)[0]["instances"]
        assert len(expected["boxes"]) == DETECTIONS  # the random head really detects things
        assert_same_detections(expected["boxes"], expected["scores"], expected["labels"], raw)
        # Postprocessing drops boxes that clipping made empty (Detectron2's rule; torchvision keeps them).
        nonempty = Boxes(expected["boxes"]).nonempty()
        assert nonempty.sum() >= DETECTIONS // 2
        assert_same_detections(expected["boxes"][nonempty], expected["scores"][nonempty],
                               expected["labels"][nonempty], final)
        assert final.image_size == (h, w)


def test_torchvision_retinanet_weights_fill_the_whole_model(tmp_path, torchvision_retinanet):
    torch.save(torchvision_retinanet.state_dict(), tmp_path / "tv.pth")
    ours = build_detrun(tmp_path / "tv.pth")
    report = load_weights(ours, tmp_path / "tv.pth", verbose=False)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])


def detectron2_retinanet_state_dict(model):
    """What Detectron2's RetinaNet checkpoints hold, by its parameter names (= detrun's), plus the
    non-weight entries its files carry (pixel statistics, anchors)."""
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in model.state_dict().items()
             if not k.endswith(("num_batches_tracked", "loss_normalizer"))}
    expected = {"head.cls_subnet.0.weight", "head.cls_subnet.6.bias", "head.bbox_subnet.4.weight",
                "head.cls_score.weight", "head.bbox_pred.bias", "backbone.top_block.p6.weight",
                "backbone.top_block.p7.bias", "backbone.fpn_lateral3.weight", "backbone.bottom_up.res5.2.conv3.weight"}
    assert expected <= set(state)
    state["pixel_mean"] = torch.zeros(3, 1, 1)
    state["anchor_generator.cell_anchors.0"] = torch.zeros(9, 4)
    return state


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_detectron2_retinanet_checkpoint_loads_with_no_missing_or_unexpected_keys(tmp_path, suffix):
    model = instantiate(get_recipe("retinanet_R50").model)
    state = detectron2_retinanet_state_dict(model)
    path = tmp_path / f"model_final{suffix}"
    if suffix == ".pkl":  # Detectron2 model-zoo files: numpy arrays in a pickled dict
        import pickle

        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Detectron2 Model Zoo"}, f)
    else:
        torch.save({"model": state, "iteration": 90000}, path)
    report = load_weights(model, path, verbose=False)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert set(report.ignored) == {"pixel_mean", "anchor_generator.cell_anchors.0"}
    torch.testing.assert_close(model.head.cls_score.weight, state["head.cls_score.weight"])
