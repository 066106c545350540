"""Inference of untrained, seeded shapes models under CPU bf16 autocast, end to end (issue 17):
every op of the path (roi_align, nms, paste_masks, box decoding) takes the mixed dtypes."""
import pytest
import torch

from detrun.config import get_recipe, instantiate

SIZE = 160  # the network input; outputs are asked for at 120 x 200 to exercise the rescale


def predict(model, image, dtype):
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        return model([{"image": image, "height": 120, "width": 200}])[0]["instances"]


@pytest.mark.parametrize("recipe, overrides", [
    ("shapes_mask_rcnn", {}),
    ("shapes_retinanet", {"test_score_thresh": 0.0}),  # an untrained head scores ~0.01 (its prior)
])
def test_bf16_autocast_inference_runs_end_to_end(recipe, overrides):
    cfg = get_recipe(recipe).model
    cfg.update(overrides)
    torch.manual_seed(0)
    model = instantiate(cfg).eval()
    image = (torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    full, half = predict(model, image, torch.float32), predict(model, image, torch.bfloat16)
    assert len(half) > 0 and half.image_size == full.image_size == (120, 200)
    assert set(half.get_fields()) == set(full.get_fields())
    # The output contract holds under autocast: float32 boxes and scores, bool masks at image size.
    assert half.pred_boxes.tensor.dtype == torch.float32 and half.scores.dtype == torch.float32
    assert half.pred_classes.dtype == torch.int64
    if half.has("pred_masks"):
        assert half.pred_masks.dtype == torch.bool and half.pred_masks.shape == (len(half), 120, 200)
    # bf16 keeps ~3 significant digits: the best detection is (nearly) the same one.
    assert abs(half.scores[0].item() - full.scores[0].item()) < 0.05
