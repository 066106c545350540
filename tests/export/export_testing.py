"""Shared helpers of the export tests: shapes models with seeded random weights, small images."""
from __future__ import annotations

import os

import pytest
import torch

from detrun.config import compose, instantiate
from detrun.export import ExportableModel, pad_images, run_exported
from detrun.structures import Instances

# name -> (recipe, overrides). Random weights: RetinaNet's prior makes every score < 0.05 (no
# detections), so its tests start the classifier at 0.1.
ARCHITECTURES = {
    "faster_rcnn": ("shapes_mask_rcnn", ["~model.roi_heads.branches.mask"]),
    "mask_rcnn": ("shapes_mask_rcnn", []),
    "retinanet": ("shapes_retinanet", ["model.head.prior_prob=0.1"]),
    "keypoint_rcnn": ("shapes_keypoint_rcnn", []),
    "cascade_mask_rcnn": ("shapes_cascade_mask_rcnn", []),
}
# Tests over the one-minute budget of a CI test run with DETRUN_SLOW_TESTS=1 only.
slow = pytest.mark.skipif(os.environ.get("DETRUN_SLOW_TESTS") != "1", reason="slow: run with DETRUN_SLOW_TESTS=1")
# Two sizes (neither a multiple of 32: both get padded), and the traced example size.
IMAGE_SIZES = [(128, 160), (100, 212)]
TRACE_SIZE = (192, 224)


def build(name: str, seed: int = 0) -> torch.nn.Module:
    recipe, overrides = ARCHITECTURES[name]
    torch.manual_seed(seed)
    return instantiate(compose(recipe, overrides).model).eval()


def shapes_image(height: int, width: int, seed: int) -> torch.Tensor:
    """uint8 Tensor[3, H, W]: a few flat-coloured rectangles and discs on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 60, (3, height, width), generator=g, dtype=torch.uint8)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for k in range(4):
        color = torch.randint(80, 256, (3, 1), generator=g, dtype=torch.uint8)
        cy, cx = int(torch.randint(10, height - 10, (1,), generator=g)), int(torch.randint(10, width - 10, (1,), generator=g))
        r = int(torch.randint(8, min(height, width) // 3, (1,), generator=g))
        inside = ((ys - cy) ** 2 + (xs - cx) ** 2 < r * r) if k % 2 else ((ys - cy).abs() < r) & ((xs - cx).abs() < r)
        image[:, inside] = color
    return image


def inputs_of(size: tuple[int, int], seed: int, output_scale: float = 1.0) -> list[dict]:
    """One mapper-like input; `output_scale` != 1 asks for results at another size (rescaled)."""
    h, w = size
    return [{"image": shapes_image(h, w, seed), "height": round(h * output_scale), "width": round(w * output_scale)}]


def program_against_eager(model: torch.nn.Module, program: torch.export.ExportedProgram):
    """Per IMAGE_SIZES input (the second asks for results at 1.5x the size): checks that the
    program's outputs equal the tensor core's bit for bit, then yields (inputs, the core's outputs,
    eager results, the results built on the program's outputs) for the caller's checks."""
    module = program.module()
    core = ExportableModel(model)
    for seed, size in enumerate(IMAGE_SIZES):
        inputs = inputs_of(size, seed, output_scale=1.5 if seed else 1.0)
        images, sizes = pad_images(model, [x["image"] for x in inputs])
        with torch.no_grad():
            expected, actual = core(images, sizes), module(images, sizes)
            eager, exported = model(inputs)[0], run_exported(model, module, inputs)[0]
        assert expected.keys() == actual.keys()
        for name in expected:
            assert torch.equal(expected[name], actual[name]), (size, name)
        yield inputs, expected, eager, exported


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def assert_same_instances(expected: Instances, actual: Instances, *, exact: bool, min_mask_iou: float = 0.99) -> None:
    """Same detections: identical (exact) or same classes, boxes within 1e-3 relative, masks with
    IoU >= min_mask_iou and keypoints within 1e-3 relative (onnxruntime)."""
    assert len(expected) == len(actual), (len(expected), len(actual))
    assert expected.image_size == actual.image_size
    assert torch.equal(expected.pred_classes, actual.pred_classes)
    if exact:
        for name, value in expected.get_fields().items():
            value = value.tensor if hasattr(value, "tensor") else value
            other = actual.get(name)
            other = other.tensor if hasattr(other, "tensor") else other
            assert torch.equal(value, other), name
        return
    torch.testing.assert_close(actual.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(actual.scores, expected.scores, rtol=1e-3, atol=1e-4)
    if expected.has("pred_masks"):
        for i, (a, b) in enumerate(zip(expected.pred_masks, actual.pred_masks)):
            assert mask_iou(a, b) >= min_mask_iou, (i, mask_iou(a, b))
    if expected.has("pred_keypoints"):
        torch.testing.assert_close(actual.pred_keypoints, expected.pred_keypoints, rtol=1e-3, atol=1e-2)


def check_program(model, program) -> None:
    """`program` (an `export_program` of `model`) against eager on IMAGE_SIZES: the core's outputs bit
    for bit, then the results built on them equal eager's results."""
    for _, outputs, eager, exported in program_against_eager(model, program):
        assert len(outputs["boxes"]) > 0, "the test needs detections"
        assert_same_instances(eager["instances"], exported["instances"], exact=True)
