import pytest
import torch

from detrun.structures import Boxes, Instances, Keypoints, PolygonMasks


def make(n, offset=0):
    square = [[0.0, 0, 4, 0, 4, 4, 0, 4]]
    return Instances(
        (20, 30),
        gt_boxes=Boxes(torch.arange(n * 4, dtype=torch.float32).view(n, 4) + offset),
        gt_classes=torch.arange(n) + offset,
        gt_masks=PolygonMasks([square] * n),
        gt_keypoints=Keypoints(torch.ones(n, 2, 3) * offset),
        names=[f"obj{i + offset}" for i in range(n)],
    )


def test_fields_and_indexing():
    inst = make(4)
    assert inst.image_size == (20, 30) and len(inst) == 4
    assert inst.has("gt_boxes") and not inst.has("scores")
    sub = inst[torch.tensor([True, False, True, False])]
    assert sub.gt_classes.tolist() == [0, 2] and len(sub.gt_masks) == 2 and len(sub.gt_keypoints) == 2
    assert sub.names == ["obj0", "obj2"]
    one = inst[-2]
    assert len(one) == 1 and one.gt_classes.tolist() == [2] and one.names == ["obj2"]
    assert inst[1:3].gt_classes.tolist() == [1, 2]
    with pytest.raises(IndexError):
        inst[4]
    inst.scores = torch.zeros(4)
    assert set(inst.get_fields()) == {"gt_boxes", "gt_classes", "gt_masks", "gt_keypoints", "names", "scores"}
    inst.remove("scores")
    assert not inst.has("scores")
    with pytest.raises(ValueError, match="length 3"):
        inst.scores = torch.zeros(3)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        inst.nope


def test_cat_and_to():
    a, b = make(2), make(3, offset=10)
    c = Instances.cat([a, b])
    assert len(c) == 5 and c.gt_classes.tolist() == [0, 1, 10, 11, 12]
    assert c.names[-1] == "obj12" and len(c.gt_masks) == 5
    torch.testing.assert_close(c.gt_boxes.tensor[2:], b.gt_boxes.tensor)
    moved = c.to("cpu")
    assert moved is not c and torch.equal(moved.gt_classes, c.gt_classes)
    with pytest.raises(ValueError, match="image sizes differ"):
        Instances.cat([a, Instances((1, 1), gt_classes=torch.zeros(1))])
    assert len(Instances((3, 3))) == 0
