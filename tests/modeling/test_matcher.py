"""Matcher vs torchvision's Matcher; balanced sampling."""
import pytest
import torch
from torchvision.models.detection._utils import Matcher as TVMatcher
from torchvision.ops import box_iou

from detrun.modeling.matcher import Matcher
from detrun.modeling.sampling import subsample_labels


def _boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 100
    return torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 60 + 4], dim=1)


def _tv_labels(matches):
    """torchvision's -1 (below low) / -2 (between) / index, as Detectron2-style (matches, labels)."""
    labels = torch.ones_like(matches, dtype=torch.int8)
    labels[matches == TVMatcher.BELOW_LOW_THRESHOLD] = 0
    labels[matches == TVMatcher.BETWEEN_THRESHOLDS] = -1
    return labels


@pytest.mark.parametrize("low_quality", [False, True])
@pytest.mark.parametrize("thresholds", [(0.3, 0.7), (0.5, 0.5)])
def test_matches_torchvision(low_quality, thresholds):
    gen = torch.Generator().manual_seed(0)
    gt, pred = _boxes(7, gen), _boxes(2000, gen)
    iou = box_iou(gt, pred)
    # Exact ties of a gt's best IoU: a duplicated prediction must be matched too.
    iou = torch.cat([iou, iou[:, :5]], dim=1)
    if thresholds[0] == thresholds[1]:
        ours = Matcher(thresholds=[thresholds[0]], labels=[0, 1], allow_low_quality_matches=low_quality)
    else:
        ours = Matcher(thresholds=list(thresholds), labels=[0, -1, 1], allow_low_quality_matches=low_quality)
    matches, labels = ours(iou)
    ref = TVMatcher(thresholds[1], thresholds[0], allow_low_quality_matches=low_quality)(iou)
    expected_labels = _tv_labels(ref)
    torch.testing.assert_close(labels, expected_labels)
    positive = labels == 1
    torch.testing.assert_close(matches[positive], ref[positive])
    if low_quality:
        assert (labels[iou.argmax(dim=1)] == 1).all()


def test_gt_overlapping_nothing_makes_no_positives():
    m = Matcher(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True)
    iou = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.5, 0.2]])  # gt 0: a zero-area box
    _, labels = m(iou)
    assert labels.tolist() == [0, 1, 0]


def test_empty_gt_and_empty_predictions():
    m = Matcher(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True)
    matches, labels = m(torch.zeros(0, 5))
    assert matches.tolist() == [0] * 5 and labels.tolist() == [0] * 5
    matches, labels = m(torch.zeros(3, 0))
    assert matches.shape == labels.shape == (0,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        Matcher(thresholds=[0.5], labels=[0, -1, 1])
    with pytest.raises(ValueError, match="increasing"):
        Matcher(thresholds=[0.7, 0.3], labels=[0, -1, 1])


@pytest.mark.parametrize("num_pos", [0, 10, 500])
def test_subsample_labels_balance(num_pos):
    torch.manual_seed(0)
    labels = torch.full((2000,), 0)
    labels[:num_pos] = 1
    labels[1500:1600] = -1  # ignored
    pos, neg = subsample_labels(labels, 256, 0.25, 0)
    assert len(pos) == min(num_pos, 64)
    assert len(neg) == 256 - len(pos)
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == len(pos) and len(set(neg.tolist())) == len(neg)
    # Few negatives: take them all, don't pad.
    pos, neg = subsample_labels(torch.tensor([1, 1, 0, -1]), 256, 0.5, 0)
    assert sorted(pos.tolist()) == [0, 1] and neg.tolist() == [2]
