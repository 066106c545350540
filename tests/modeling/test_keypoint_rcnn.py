"""Keypoint R-CNN: the head's loss and decoding against torchvision's functions, the whole model
against torchvision's ``keypointrcnn_resnet50_fpn`` from the same weights, Detectron2's parameter
names, and left/right keypoints swapped by flips as the metadata says."""
import numpy as np
import pytest
import torch
from test_detectron2_format import detectron2_resnet_names
from test_torchvision_parity import make_images, randomize_torchvision_
from torchvision.models.detection import keypointrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints as tv_heatmaps_to_keypoints
from torchvision.models.detection.roi_heads import keypointrcnn_loss

from detrun.checkpoint import load_weights
from detrun.config import get_recipe, instantiate
from detrun.data import MetadataCatalog, annotations_to_instances, transform_instance_annotations
from detrun.data.datasets.builtin import register_all_builtin
from detrun.data.transforms import HFlipTransform, TransformList, keypoint_flip_indices
from detrun.modeling.box_regression import Box2BoxTransform
from detrun.modeling.matcher import Matcher
from detrun.modeling.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    KRCNNConvDeconvUpsampleHead,
    MaskRCNNConvUpsampleHead,
    ROIBranch,
    ROIPooler,
    StandardROIHeads,
)
from detrun.modeling.roi_heads.keypoint_head import heatmaps_to_keypoints, keypoint_rcnn_loss
from detrun.structures import Boxes, Instances, Keypoints, pairwise_iou

DETECTIONS = 30
POST_NMS_TOPK = 300


def random_rois(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 150
    return torch.cat([xy, xy + 3 + torch.rand(n, 2, generator=gen) * 90], dim=1)


def test_decoding_matches_torchvision():
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(12, 17, 56, 56, generator=gen)
    rois = random_rois(12, gen)
    rois[0] = torch.tensor([10.0, 10.0, 10.5, 12.0])  # narrower than a pixel: clamped to 1
    xy, scores = tv_heatmaps_to_keypoints(maps, rois)
    ours = heatmaps_to_keypoints(maps, rois)
    torch.testing.assert_close(ours[..., :2], xy[..., :2])
    torch.testing.assert_close(ours[..., 2], scores)
    assert torch.all((ours[..., 3] > 0) & (ours[..., 3] <= 1))


def test_loss_matches_torchvision():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 17, 56, 56, generator=gen)
    boxes = random_rois(10, gen)
    wh = boxes[:, 2:] - boxes[:, :2]
    xy = boxes[:, None, :2] + (torch.rand(10, 17, 2, generator=gen) * 1.4 - 0.2) * wh[:, None]  # some outside
    vis = (torch.rand(10, 17, 1, generator=gen) > 0.3).float() * 2
    keypoints = torch.cat([xy, vis], dim=2)
    proposals = [Instances((300, 300), proposal_boxes=Boxes(boxes[:6]), gt_keypoints=Keypoints(keypoints[:6])),
                 Instances((300, 300), proposal_boxes=Boxes(boxes[6:]), gt_keypoints=Keypoints(keypoints[6:]))]
    expected = keypointrcnn_loss(logits, [boxes[:6], boxes[6:]], [keypoints[:6], keypoints[6:]],
                                 [torch.arange(6), torch.arange(4)])
    torch.testing.assert_close(keypoint_rcnn_loss(logits, proposals, None), expected)
    summed = keypoint_rcnn_loss(logits, proposals, 1.0)
    empty = [Instances((300, 300), proposal_boxes=Boxes(boxes[:2]), gt_keypoints=Keypoints(keypoints[:2] * 0))]
    assert keypoint_rcnn_loss(logits[:2], empty, None).item() == 0 and summed > expected


@pytest.fixture(scope="module")
def torchvision_keypointrcnn():
    model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2).eval()
    model.rpn._post_nms_top_n["testing"] = POST_NMS_TOPK
    model.roi_heads.detections_per_img = DETECTIONS
    randomize_torchvision_(model, seed=5)
    return model


def test_keypoint_rcnn_matches_torchvision(tmp_path, torchvision_keypointrcnn):
    torch.save(torchvision_keypointrcnn.state_dict(), tmp_path / "tv.pth")
    cfg = get_recipe("keypoint_rcnn_R50_torchvision").model
    cfg.proposal_generator.post_nms_topk = [2000, POST_NMS_TOPK]
    cfg.roi_heads.box_predictor.test_topk_per_image = DETECTIONS
    cfg.weights = str(tmp_path / "tv.pth")
    ours = instantiate(cfg).eval()
    report = load_weights(ours, tmp_path / "tv.pth", verbose=False)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    total = 0
    for image in make_images(seed=6):
        h, w = image.shape[-2:]
        tv = torchvision_keypointrcnn
        tv.transform.min_size, tv.transform.max_size = (min(h, w),), max(h, w)
        with torch.no_grad():
            expected = tv([image.float() / 255])[0]
            got = ours([{"image": image, "height": h, "width": w}])[0]["instances"]
        assert len(got) == len(expected["boxes"]) >= 10
        iou = pairwise_iou(Boxes(expected["boxes"]), got.pred_boxes)
        best, index = iou.max(dim=1)
        assert torch.all(best > 0.999) and len(set(index.tolist())) == len(index)
        torch.testing.assert_close(got.pred_boxes.tensor[index], expected["boxes"], rtol=1e-4, atol=2e-3)
        torch.testing.assert_close(got.scores[index], expected["scores"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.pred_keypoints[index, :, :2], expected["keypoints"][..., :2], rtol=1e-4,
                                   atol=2e-3)
        torch.testing.assert_close(got.pred_keypoints[index, :, 2], expected["keypoints_scores"], rtol=1e-4,
                                   atol=1e-4)
        total += len(got)
    assert total >= 20


def detectron2_keypoint_rcnn_names():
    """Every tensor name of Detectron2's keypoint_rcnn_R_50_FPN (its GeneralizedRCNN, FPN, RPN,
    StandardROIHeads with KRCNNConvDeconvUpsampleHead), written out from its naming scheme."""
    wb = ["weight", "bias"]
    names = [f"backbone.bottom_up.{d2}" for d2, _ in detectron2_resnet_names()]
    names += [f"backbone.fpn_{kind}{k}.{p}" for k in range(2, 6) for kind in ("lateral", "output") for p in wb]
    names += [f"proposal_generator.rpn_head.{layer}.{p}" for layer in ("conv", "objectness_logits", "anchor_deltas")
              for p in wb]
    names += [f"roi_heads.{layer}.{p}" for layer in ("box_head.fc1", "box_head.fc2", "box_predictor.cls_score",
                                                     "box_predictor.bbox_pred") for p in wb]
    names += [f"roi_heads.keypoint_head.conv_fcn{k}.{p}" for k in range(1, 9) for p in wb]
    names += [f"roi_heads.keypoint_head.score_lowres.{p}" for p in wb]
    return names


def test_detectron2_keypoint_rcnn_checkpoint_loads(tmp_path):
    model = instantiate(get_recipe("keypoint_rcnn_R50").model)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    names = detectron2_keypoint_rcnn_names()
    assert set(names) == {k for k in shapes if not k.endswith("num_batches_tracked")}
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shapes[k], generator=gen) for k in names}
    torch.save({"model": state}, tmp_path / "model_final.pth")
    report = load_weights(model, tmp_path / "model_final.pth", verbose=False)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    torch.testing.assert_close(model.roi_heads.keypoint_head.score_lowres.weight,
                               state["roi_heads.keypoint_head.score_lowres.weight"])


@pytest.mark.parametrize("dataset", ["keypoints_coco_2017_val", "shapes_val"])
def test_flips_swap_left_and_right_keypoints_as_the_metadata_says(dataset):
    register_all_builtin()
    meta = MetadataCatalog.get(dataset)
    names, flip_map = meta.keypoint_names, meta.keypoint_flip_map
    k = len(names)
    # Keypoint i at x = 10 + i, y = 5 + i; visible.
    keypoints = np.stack([10.0 + np.arange(k), 5.0 + np.arange(k), np.full(k, 2.0)], axis=1)
    anno = {"bbox": [0, 0, 60, 60], "bbox_mode": 0, "category_id": 0, "keypoints": keypoints.flatten().tolist()}
    flip = HFlipTransform(width=100, keypoint_flip_indices=keypoint_flip_indices(names, flip_map))
    out = transform_instance_annotations(anno, TransformList([flip]), (80, 100))
    flipped = np.asarray(out["keypoints"]).reshape(k, 3)
    partner = {a: b for a, b in flip_map} | {b: a for a, b in flip_map}
    for i, name in enumerate(names):
        j = names.index(partner.get(name, name))
        # Slot i now holds the mirror image of the keypoint that was in its partner's slot.
        assert flipped[i, 0] == pytest.approx(100 - keypoints[j, 0]) and flipped[i, 1] == keypoints[j, 1]
    if dataset.startswith("keypoints"):
        assert names.index("left_eye") == 1 and flipped[1, 0] == pytest.approx(100 - keypoints[2, 0])
    instances = annotations_to_instances([out], (80, 100), mask_format=None)
    assert torch.allclose(instances.gt_keypoints.tensor[0], torch.as_tensor(flipped, dtype=torch.float32))


def _keypoint_heads(box_scale):
    """Tiny StandardROIHeads with a keypoint branch on one 1/4-scale level (seeded weights)."""
    torch.manual_seed(0)
    pooler = dict(scales=[1 / 4], sampling_ratio=0, aligned=True)
    return StandardROIHeads(
        num_classes=2, batch_size_per_image=64, positive_fraction=0.25,
        proposal_matcher=Matcher(thresholds=[0.5], labels=[0, 1]), box_in_features=["p2"],
        box_pooler=ROIPooler(output_size=7, **pooler),
        box_head=FastRCNNConvFCHead(in_channels=4, input_size=7, fc_dims=[16]),
        box_predictor=FastRCNNOutputLayers(in_channels=16, num_classes=2,
                                           box2box_transform=Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))),
        branches={"keypoint": ROIBranch(in_features=["p2"], pooler=ROIPooler(output_size=14, **pooler),
                                        head=KRCNNConvDeconvUpsampleHead(in_channels=4, num_keypoints=3, conv_dims=[8]),
                                        proposals="visible_keypoints", box_scale=box_scale)})


def _enlarged(boxes, scale):
    centres, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    return torch.cat([centres - half, centres + half], dim=1)


def test_branch_box_scale_enlarges_what_the_keypoint_head_sees():
    features = {"p2": torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(1))}
    boxes = torch.tensor([[20.0, 30.0, 60.0, 70.0], [50.0, 10.0, 110.0, 40.0]])
    scaled, plain = _keypoint_heads(1.5).eval(), _keypoint_heads(1.0).eval()

    def detections(b):
        return [Instances((128, 128), pred_boxes=Boxes(b.clone()), pred_classes=torch.tensor([0, 1]),
                          scores=torch.tensor([0.9, 0.8]))]
    got = scaled.forward_with_given_boxes(features, detections(boxes))[0]
    expected = plain.forward_with_given_boxes(features, detections(_enlarged(boxes, 1.5)))[0]
    torch.testing.assert_close(got.pred_keypoints, expected.pred_keypoints)
    torch.testing.assert_close(got.pred_boxes.tensor, boxes)  # the detections keep their boxes

    # Training: a keypoint 2 px outside its box is a target (and selects the proposal) only when enlarged.
    keypoints = torch.tensor([[[62.0, 72.0, 2.0], [40.0, 50.0, 0.0], [0.0, 0.0, 0.0]]])
    proposals = [Instances((128, 128), proposal_boxes=Boxes(boxes[:1]), gt_classes=torch.tensor([0]),
                           gt_keypoints=Keypoints(keypoints))]
    scaled.train(), plain.train()
    assert plain.forward_branches(features, proposals)["loss_keypoint"].item() == 0
    loss = scaled.forward_branches(features, proposals)["loss_keypoint"]
    proposals[0].proposal_boxes = Boxes(_enlarged(boxes[:1], 1.5))
    assert loss.item() > 0
    torch.testing.assert_close(loss, plain.forward_branches(features, proposals)["loss_keypoint"])


def test_branch_box_scale_is_refused_for_masks_and_shrinking():
    pooler = ROIPooler(output_size=14, scales=[1 / 4], sampling_ratio=0, aligned=True)
    with pytest.raises(ValueError, match="mask head"):
        ROIBranch(in_features=["p2"], pooler=pooler, box_scale=1.2,
                  head=MaskRCNNConvUpsampleHead(in_channels=4, num_classes=2, conv_dims=[8]))
    with pytest.raises(ValueError, match=">= 1"):
        ROIBranch(in_features=["p2"], pooler=pooler, box_scale=0.9,
                  head=KRCNNConvDeconvUpsampleHead(in_channels=4, num_keypoints=3, conv_dims=[8]))
