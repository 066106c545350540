"""GeneralizedRCNN's own work: normalisation, padding, wiring of the parts, rescaling, weights, checks.

The parts are small stand-ins here, so that what is tested is the meta-architecture itself.
"""
import pytest
import torch
from torch import nn

from detrun.checkpoint import CheckpointError
from detrun.config import InstantiationError, get_recipe, instantiate
from detrun.modeling import Backbone, GeneralizedRCNN, MetaArchitecture, ShapeSpec
from detrun.structures import Boxes, Instances

MEAN, STD = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]


class OneConv(Backbone):
    """Stride-4 features; inputs padded to multiples of 16."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.seen = None

    def forward(self, x):
        self.seen = x
        return {"c": self.conv(x)}

    def output_shape(self):
        return {"c": ShapeSpec(channels=8, stride=4)}

    @property
    def size_divisibility(self):
        return 16


class FixedProposals(nn.Module):
    """One proposal per image, a loss that depends on the features."""

    def forward(self, images, features, gt_instances=None):
        self.gt = gt_instances
        proposals = []
        for h, w in images.image_sizes:
            p = Instances((h, w))
            p.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, w / 2, h / 2]]))
            p.objectness_logits = torch.zeros(1)
            proposals.append(p)
        losses = {"loss_rpn_cls": features["c"].mean()} if self.training else {}
        return proposals, losses


class BoxFromProposal(nn.Module):
    """Detects each proposal as class 1 with a mask whose left half is on."""

    def forward(self, images, features, proposals, targets=None):
        if self.training:
            return proposals, {"loss_cls": features["c"].abs().mean()}
        results = []
        for p in proposals:
            r = Instances(p.image_size)
            r.pred_boxes = p.proposal_boxes
            r.scores = torch.ones(1)
            r.pred_classes = torch.ones(1, dtype=torch.int64)
            masks = torch.zeros(1, 1, 28, 28)
            masks[..., :14] = 1.0
            r.pred_masks = masks
            results.append(r)
        return results, {}


def model(**kwargs):
    args = dict(backbone=OneConv(), proposal_generator=FixedProposals(), roi_heads=BoxFromProposal(),
                pixel_mean=MEAN, pixel_std=STD)
    args.update(kwargs)
    return GeneralizedRCNN(**args)


def image(h, w, seed=0):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_normalises_and_pads_to_the_backbone_divisibility():
    m = model().eval()
    images = m.preprocess_image([{"image": image(30, 41)}, {"image": image(20, 50, seed=1)}])
    assert images.tensor.shape == (2, 3, 32, 64) and images.image_sizes == [(30, 41), (20, 50)]
    expected = (image(30, 41).float() - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(images.tensor[0, :, :30, :41], expected)
    assert torch.all(images.tensor[0, :, 30:] == 0) and torch.all(images.tensor[1, :, :, 50:] == 0)


def test_inference_rescales_to_the_requested_size():
    m = model().eval()
    with torch.no_grad():
        (out,) = m([{"image": image(32, 48), "height": 64, "width": 96}])
    instances = out["instances"]
    assert instances.image_size == (64, 96)
    # The proposal (0, 0, 24, 16) in network pixels is (0, 0, 48, 32) in the requested image.
    torch.testing.assert_close(instances.pred_boxes.tensor, torch.tensor([[0.0, 0.0, 48.0, 32.0]]))
    masks = instances.pred_masks
    assert masks.dtype == torch.bool and masks.shape == (1, 64, 96)
    assert masks[0, :32, :24].all() and not masks[0, :, 24:].any() and not masks[0, 32:].any()
    # Without height/width, results stay at the input size; do_postprocess=False gives raw results.
    with torch.no_grad():
        assert m([{"image": image(32, 48)}])[0]["instances"].image_size == (32, 48)
        raw = m.inference([{"image": image(32, 48)}], do_postprocess=False)
    assert raw[0]["instances"].pred_masks.shape == (1, 1, 28, 28)


def test_training_returns_losses_of_all_parts_and_needs_ground_truth():
    m = model().train()
    gt = Instances((32, 48))
    gt.gt_boxes = Boxes(torch.tensor([[1.0, 2.0, 10.0, 12.0]]))
    gt.gt_classes = torch.tensor([0])
    losses = m([{"image": image(32, 48), "instances": gt}])
    assert set(losses) == {"loss_rpn_cls", "loss_cls"}
    sum(losses.values()).backward()
    assert m.backbone.conv.weight.grad is not None
    assert m.proposal_generator.gt[0] is not gt and torch.equal(m.proposal_generator.gt[0].gt_classes, gt.gt_classes)
    with pytest.raises(ValueError, match=r"needs 'instances'.*inputs \[1\]"):
        m([{"image": image(32, 48), "instances": gt}, {"image": image(32, 48)}])


def test_bad_inputs_and_arguments():
    with pytest.raises(ValueError, match="input_format"):
        model(input_format="YUV")
    with pytest.raises(ValueError, match="differ in length"):
        model(pixel_std=[1.0])
    with pytest.raises(ValueError, match=r"Tensor\[3, H, W\].*\(1, 32, 32\)"):
        model().eval()([{"image": torch.zeros(1, 32, 32, dtype=torch.uint8)}])


def test_contract_and_state():
    m = model()
    assert isinstance(m, MetaArchitecture) and m.device == torch.device("cpu")
    # Pixel statistics belong to the recipe, not to checkpoints.
    assert not any(k.startswith("pixel_") for k in m.state_dict())
    assert m.input_format == "RGB"


def test_weights_are_loaded_when_built(tmp_path):
    source = model()
    with torch.no_grad():
        source.backbone.conv.weight.fill_(0.5)
    torch.save({"model": source.state_dict(), "format": "detrun"}, tmp_path / "w.pth")
    loaded = model(weights=str(tmp_path / "w.pth"))
    assert torch.all(loaded.backbone.conv.weight == 0.5)
    with pytest.raises(CheckpointError, match="missing.pth"):
        model(weights=str(tmp_path / "missing.pth"))


def test_heads_disagreeing_with_the_backbone_fail_at_build():
    cfg = get_recipe("shapes_mask_rcnn").model
    cfg.proposal_generator.anchor_generator.strides = [4, 8, 16, 32, 32]
    with pytest.raises(InstantiationError, match=r"anchor_generator.strides = \[4, 8, 16, 32, 32\].*\[4, 8, 16, 32, 64\]"):
        instantiate(cfg)
    cfg = get_recipe("shapes_mask_rcnn").model
    cfg.roi_heads.branches.mask.pooler.scales = [0.125, 0.0625, 0.03125, 0.015625]
    with pytest.raises(InstantiationError, match=r"roi_heads.branches.mask.pooler.scales = \[0.125.*have scales \[0.25"):
        instantiate(cfg)
