"""Pictures of semantic and panoptic results: stuff pixels carry their class's tint, things are
outlined in their class colour, panoptic ground truth is drawn from its PNG."""
import numpy as np
import torch
from PIL import Image

from detrun.evaluation.pictures import draw_outputs
from detrun.utils.visualize import draw_panoptic, draw_record, draw_sem_seg

STUFF_COLORS = [[128, 128, 128], [240, 200, 40], [150, 60, 200]]
THING_COLORS = [[220, 60, 60], [60, 180, 75]]
STYLE = dict(class_names=["circle", "square"], class_colors=THING_COLORS, stuff_classes=["things", "sky", "grass"],
             stuff_colors=STUFF_COLORS)


def tint(pixel, color, alpha=0.5):
    return np.round(np.asarray(pixel, np.float32) * (1 - alpha) + np.asarray(color, np.float32) * alpha).astype(np.uint8)


def scene():
    """A 60x80 grey image; segment 1 = sky (top half), 2 = grass (bottom half), 3 = a square thing."""
    image = np.full((60, 80, 3), 100, np.uint8)
    ids = np.ones((60, 80), np.int32)
    ids[30:] = 2
    ids[35:50, 40:60] = 3
    segments = [{"id": 1, "isthing": False, "category_id": 1}, {"id": 2, "isthing": False, "category_id": 2},
                {"id": 3, "isthing": True, "category_id": 1, "score": 0.9}]
    return image, ids, segments


def test_panoptic_picture_tints_stuff_and_outlines_things():
    image, ids, segments = scene()
    picture = np.asarray(draw_panoptic(image, ids, segments, **STYLE))
    np.testing.assert_array_equal(picture[10, 70], tint(image[10, 70], STUFF_COLORS[1]))  # sky
    np.testing.assert_array_equal(picture[55, 70], tint(image[55, 70], STUFF_COLORS[2]))  # grass
    # the thing: translucent fill of its class colour (on the image, not on a stuff tint), outline in the colour
    np.testing.assert_array_equal(picture[42, 50], tint(image[42, 50], THING_COLORS[1]))
    np.testing.assert_array_equal(picture[49, 50], THING_COLORS[1])


def test_model_outputs_are_drawn_panoptic_first_then_semantic(tmp_path):
    image, ids, segments = scene()
    Image.fromarray(image).save(tmp_path / "a.png")
    inputs = [{"file_name": str(tmp_path / "a.png"), "image_id": 1}]
    panoptic = draw_outputs(inputs, [{"panoptic_seg": (torch.from_numpy(ids), segments)}], STYLE)[0]
    np.testing.assert_array_equal(np.asarray(panoptic)[10, 70], tint(image[10, 70], STUFF_COLORS[1]))
    scores = torch.zeros(3, 60, 80)
    scores[2, 30:] = 1  # grass below, "things" (class 0) above
    semantic = np.asarray(draw_outputs(inputs, [{"sem_seg": scores}], STYLE)[0])
    np.testing.assert_array_equal(semantic[55, 70], tint(image[55, 70], STUFF_COLORS[2]))
    np.testing.assert_array_equal(semantic[25, 70], tint(image[25, 70], STUFF_COLORS[0]))


def test_sem_seg_picture_leaves_ignored_pixels():
    image = np.full((20, 20, 3), 50, np.uint8)
    labels = np.full((20, 20), 255)
    labels[:10] = 1
    picture = np.asarray(draw_sem_seg(image, labels, stuff_colors=STUFF_COLORS, show_names=False))
    np.testing.assert_array_equal(picture[15, 5], image[15, 5])
    np.testing.assert_array_equal(picture[5, 5], tint(image[5, 5], STUFF_COLORS[1]))


def test_panoptic_ground_truth_record_is_drawn_from_its_png(tmp_path):
    from detrun.data.datasets.coco_panoptic import id2rgb

    image, ids, segments = scene()
    Image.fromarray(id2rgb(ids)).save(tmp_path / "pan.png")
    record = {"file_name": "a.png", "height": 60, "width": 80, "annotations": [],
              "pan_seg_file_name": str(tmp_path / "pan.png"), "segments_info": [
                  {k: v for k, v in s.items() if k != "score"} for s in segments]}
    picture = np.asarray(draw_record(image, record, **STYLE))
    np.testing.assert_array_equal(picture[10, 70], tint(image[10, 70], STUFF_COLORS[1]))
    np.testing.assert_array_equal(picture[49, 50], THING_COLORS[1])


def test_predictor_returns_panoptic_outputs_on_the_cpu(tmp_path):
    from detrun.config import compose
    from detrun.evaluation import Predictor

    image, _, _ = scene()
    Image.fromarray(image).save(tmp_path / "a.png")
    output = Predictor(compose("shapes_panoptic_fpn"))(tmp_path / "a.png")  # random weights: shapes only
    ids, segments = output["panoptic_seg"]
    assert ids.shape == (60, 80) and ids.device.type == "cpu" and isinstance(segments, list)
    assert output["sem_seg"].shape == (4, 60, 80) and output["instances"].image_size == (60, 80)
