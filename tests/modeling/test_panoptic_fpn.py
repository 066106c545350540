"""Panoptic FPN pieces: Detectron2's parameter names of the semantic head (and a Detectron2 model-zoo
file of a panoptic model loading), the combination step on hand-made outputs, the feature check."""
import pickle

import pytest
import torch

from detrun.checkpoint import load_weights
from detrun.config import InstantiationError, get_recipe, instantiate
from detrun.modeling import SemSegFPNHead
from detrun.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detrun.structures import Boxes, Instances


def detectron2_sem_seg_head_names():
    """Detectron2's SemSegFPNHead (GN, 4 levels, common stride 4): one Sequential per level with
    conv (norm inside) / Upsample pairs, e.g. p5 = [conv, up, conv, up, conv, up]; a 1x1 predictor."""
    names = ["predictor.weight", "predictor.bias"]
    for level, convs in (("p2", 1), ("p3", 1), ("p4", 2), ("p5", 3)):
        for k in range(convs):
            index = 0 if level == "p2" else 2 * k  # Upsample modules take the odd indices
            names += [f"{level}.{index}.weight", f"{level}.{index}.norm.weight", f"{level}.{index}.norm.bias"]
    return names


def test_sem_seg_head_has_detectron2_names_and_shapes():
    head = SemSegFPNHead(in_features=["p2", "p3", "p4", "p5"], in_strides=[4, 8, 16, 32], in_channels=16,
                         num_classes=5, conv_dims=8, norm="GN")
    assert set(head.state_dict()) == set(detectron2_sem_seg_head_names())
    features = {f"p{k}": torch.randn(2, 16, 64 // 2 ** k, 96 // 2 ** k) for k in range(2, 6)}
    head.eval()
    logits, losses = head(features)
    assert logits.shape == (2, 5, 64, 96) and losses == {}
    head.train()
    targets = torch.randint(0, 5, (2, 64, 96))
    targets[:, :10] = 255
    _, losses = head(features, targets)
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])


def test_a_detectron2_model_zoo_file_of_a_panoptic_model_loads(tmp_path):
    torch.manual_seed(0)
    cfg = get_recipe("shapes_panoptic_fpn")
    source = instantiate(cfg.model).eval()
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}
    assert "sem_seg_head.p2.0.norm.weight" in arrays and "sem_seg_head.predictor.weight" in arrays
    path = tmp_path / "model_final_c10459.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "Detectron2 Model Zoo"}, protocol=2))
    torch.manual_seed(1)
    target = instantiate(cfg.model).eval()
    report = load_weights(target, path, strict=True, verbose=False)
    assert len(report.loaded) == len(arrays)
    images = [{"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)}]
    with torch.no_grad():
        torch.testing.assert_close(target(images)[0]["sem_seg"], source(images)[0]["sem_seg"], rtol=0, atol=0)


def test_feature_check_names_a_wrong_stride():
    cfg = get_recipe("shapes_panoptic_fpn")
    cfg.model.sem_seg_head.in_strides = [4, 8, 16, 64]
    with pytest.raises(InstantiationError, match=r"sem_seg_head.in_strides = \[4, 8, 16, 64\], but .* \[4, 8, 16, 32\]"):
        instantiate(cfg.model)


def instances(masks, scores, classes):
    inst = Instances(masks.shape[1:])
    inst.pred_masks = masks
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.tensor(classes)
    inst.pred_boxes = Boxes(torch.zeros(len(scores), 4))
    return inst


def test_combination_follows_detectron2():
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True  # score 0.9: pasted first
    masks[1, 2:6, 2:6] = True  # 0.8: 4 of 16 pixels taken (<= 0.5) -> keeps the other 12
    masks[2, :3, :3] = True  # 0.7: all taken -> dropped
    masks[3, 6:, 6:] = True  # 0.3: below the score threshold
    semantic = torch.zeros(8, 8, dtype=torch.int64)
    semantic[:, 5:] = 1  # stuff 1: 24 pixels, 4 of them taken by instance 1 -> 20 left
    semantic[7, :5] = 2  # stuff 2: 5 pixels -> below the area limit
    ids, segments = combine_semantic_and_instance_outputs(
        instances(masks, [0.9, 0.8, 0.7, 0.3], [2, 0, 1, 1]), semantic, overlap_threshold=0.5,
        stuff_area_thresh=10, instances_score_thresh=0.5)
    assert ids.dtype == torch.int32
    assert [(s["id"], s["isthing"], s["category_id"]) for s in segments] == [(1, True, 2), (2, True, 0), (3, False, 1)]
    assert segments[1]["instance_id"] == 1 and segments[2]["area"] == 20
    assert (ids[:4, :4] == 1).all() and int((ids == 2).sum()) == 12 and int((ids == 3).sum()) == 20
    assert (ids[7, :5] == 0).all()  # void: the small stuff region and unclaimed pixels
