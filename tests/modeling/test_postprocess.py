"""detector_postprocess: rescaling vs torchvision's resize_boxes, clipping, mask pasting."""
import torch
from torchvision.models.detection.transform import resize_boxes

from detrun.modeling.postprocess import detector_postprocess
from detrun.ops import paste_masks
from detrun.structures import Boxes, Instances


def _detections(n, image_size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h, w = image_size
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w - 20.0, h - 20.0])
    boxes = torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=gen) * 19], dim=1)
    return Instances(
        image_size, pred_boxes=Boxes(boxes), scores=torch.rand(n, generator=gen),
        pred_classes=torch.randint(0, 3, (n,), generator=gen), pred_masks=torch.rand(n, 1, 28, 28, generator=gen),
    )


def test_boxes_and_masks_rescaled():
    det = _detections(30, (200, 266))
    before = det.pred_boxes.tensor.clone()
    out = detector_postprocess(det, 480, 640)
    assert out.image_size == (480, 640) and len(out) == 30
    expected = resize_boxes(before, (200, 266), (480, 640))
    torch.testing.assert_close(out.pred_boxes.tensor, expected)
    torch.testing.assert_close(det.pred_boxes.tensor, before)  # input untouched
    assert out.pred_masks.dtype == torch.bool and out.pred_masks.shape == (30, 480, 640)
    torch.testing.assert_close(out.pred_masks, paste_masks(det.pred_masks, expected, (480, 640), threshold=0.5))
    looser = detector_postprocess(det, 480, 640, mask_threshold=0.2)
    assert looser.pred_masks.sum() > out.pred_masks.sum()
    torch.testing.assert_close(out.scores, det.scores)


def test_clip_and_drop_empty_boxes():
    det = Instances(
        (100, 100), pred_boxes=Boxes(torch.tensor([[-5.0, 10, 50, 120], [100, 10, 110, 20], [10, 10, 20, 20]])),
        scores=torch.tensor([0.9, 0.8, 0.7]), pred_classes=torch.tensor([0, 1, 2]),
    )
    out = detector_postprocess(det, 50, 200)
    # Box 1 lies right of the image: empty after clipping, dropped.
    assert out.pred_classes.tolist() == [0, 2]
    torch.testing.assert_close(out.pred_boxes.tensor, torch.tensor([[0.0, 5, 100, 50], [20, 5, 40, 10]]))


def test_proposals_and_empty_results():
    props = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[0.0, 0, 32, 32]])), objectness_logits=torch.ones(1))
    out = detector_postprocess(props, 128, 128)
    torch.testing.assert_close(out.proposal_boxes.tensor, torch.tensor([[0.0, 0, 64, 64]]))
    empty = detector_postprocess(_detections(0, (64, 64)), 32, 48)
    assert len(empty) == 0 and empty.pred_masks.shape == (0, 32, 48) and empty.pred_masks.dtype == torch.bool


def test_keypoints_rescaled_like_torchvision():
    from torchvision.models.detection.transform import resize_keypoints

    from detrun.structures import Keypoints

    det = _detections(5, (100, 150))
    gen = torch.Generator().manual_seed(1)
    keypoints = torch.cat([torch.rand(5, 17, 2, generator=gen) * 100, torch.rand(5, 17, 1, generator=gen)], dim=2)
    det.pred_keypoints = keypoints.clone()
    out = detector_postprocess(det, 300, 600)
    expected = resize_keypoints(keypoints, (100, 150), (300, 600))
    torch.testing.assert_close(out.pred_keypoints, expected)  # x, y scaled; scores unchanged
    torch.testing.assert_close(det.pred_keypoints, keypoints)  # input untouched
    det.pred_keypoints = Keypoints(keypoints)
    torch.testing.assert_close(detector_postprocess(det, 300, 600).pred_keypoints.tensor, expected)


def test_sem_seg_and_panoptic_outputs_cropped_and_resized():
    from torch.nn import functional as F

    from detrun.modeling.postprocess import postprocess_outputs

    logits = torch.randn(4, 32, 48)  # over a padded 32 x 48 batch image holding a 30 x 40 image
    ids = torch.arange(32 * 48, dtype=torch.int32).view(32, 48)
    segments = [{"id": 1, "category_id": 0, "isthing": False}]
    out = postprocess_outputs({"sem_seg": logits, "panoptic_seg": (ids, segments), "other": 7}, (30, 40), 60, 80)
    expected = F.interpolate(logits[None, :, :30, :40], size=(60, 80), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out["sem_seg"], expected)
    pan, segs = out["panoptic_seg"]
    assert pan.dtype == torch.int32 and pan.shape == (60, 80) and segs is segments
    # Nearest: output pixel (y, x) takes input pixel (y // 2, x // 2) of the cropped map.
    assert torch.equal(pan, ids[:30, :40].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert out["other"] == 7
