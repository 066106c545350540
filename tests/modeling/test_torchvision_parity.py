"""torchvision's Mask/Faster R-CNN and detrun's `mask_rcnn_R50_torchvision` give the same results
from the same weights: this checks the parts (ResNet, FPN, anchors, RPN, pooler, heads,
postprocess) and the checkpoint conversion (names, background class index) together.

torchvision's models are built without pretrained weights, every parameter and buffer is then
overwritten with seeded random values whose scales make the heads produce many detections, the
state dict is saved and loaded into detrun's model with `load_weights`. torchvision resizes
inputs internally, so its transform is set to scale 1 (min_size = short side, max_size = long
side); detrun is fed the same uint8 image with pixel mean/std = 255 x torchvision's.

RPN proposals, boxes, scores, classes and the 28x28 mask probabilities must match tightly.
Masks pasted into the image can't: torchvision expands the 28x28 mask by a pixel and resizes
it with `interpolate` into the integer-rounded box, detrun samples it bilinearly at pixel
centres inside the exact box (`detrun.ops.paste_masks`, Detectron2's method), which moves
outlines by up to a pixel (per-mask IoU ~0.93-0.98 for masks of 400-6000 pixels). So pasted
masks are compared (1) with torchvision's probabilities pasted by detrun's method: equal, and
(2) with torchvision's pasted masks: differing pixels lie within 1 pixel of the other outline
(but for 0.2% isolated ones), and the IoU of masks >= 400 pixels is >= 0.93 on average.
"""
import math

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

from detrun.config import get_recipe, instantiate
from detrun.ops import paste_masks
from detrun.structures import Boxes, pairwise_iou

IMAGE_SIZES = [(224, 288), (250, 190)]  # (H, W); neither a multiple of 32, so padding is exercised
NUM_CLASSES = 91  # torchvision's COCO layout: background + 90 category ids
# Fewer proposals and detections than the defaults (1000 / 100), the same on both sides: the
# box head's and mask head's cost scales with them, and what is compared stays the same.
POST_NMS_TOPK = 300
DETECTIONS = 40


def torchvision_model(builder, seed):
    model = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES).eval()
    model.rpn._post_nms_top_n["testing"] = POST_NMS_TOPK
    model.roi_heads.detections_per_img = DETECTIONS
    randomize_torchvision_(model, seed)
    return model


def randomize_torchvision_(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter/buffer with seeded values that keep activations O(1) through
    the network and make the heads confident enough to yield many detections and masks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            shape = tensor.shape
            if name.startswith(("roi_heads.mask_head.", "roi_heads.mask_predictor.conv5_mask.")):
                # Positive weights blur and mix channels alike: smooth masks (like real ones) whose
                # pasted outlines are comparable between the two paste methods.
                fan_in = math.prod(shape[1:]) if "mask_head" in name else shape[0]
                value = torch.rand(shape, generator=g) * 2.0 / fan_in if name.endswith("weight") else torch.zeros(shape)
            elif "mask_fcn_logits" in name:
                # Per class, a uniform channel mix of random sign; `calibrate_masks_` sets the scale and bias.
                sign = torch.randn(shape[0], generator=g).sign()
                value = (sign[:, None] / shape[1]).expand(shape[0], shape[1]).reshape(shape) if name.endswith(
                    "weight") else torch.zeros(shape)
            elif name.endswith("running_mean"):
                value = torch.randn(shape, generator=g) * 0.1
            elif name.endswith("running_var"):
                value = torch.rand(shape, generator=g) + 0.5
            elif ".bn" in name or ".downsample.1." in name:  # BN affine: damp the residual branches
                value = torch.rand(shape, generator=g) * 0.3 + 0.2 if name.endswith("weight") else \
                    torch.randn(shape, generator=g) * 0.05
            elif name.endswith("bias"):
                value = torch.randn(shape, generator=g) * 0.05
            else:
                fan_in = math.prod(shape[1:])
                std = math.sqrt(2.0 / fan_in)
                if "cls_logits" in name:
                    std *= 2.0  # spread objectness so top-k and NMS make real choices
                elif "bbox_pred" in name:
                    std *= 0.2  # proposals/boxes move but stay near their anchors
                elif "cls_score" in name:
                    std *= 3.0  # peaky softmax: many classes above the 0.05 score threshold
                value = torch.randn(shape, generator=g) * std
            tensor.copy_(value)


def calibrate_masks_(model: torch.nn.Module, image: torch.Tensor) -> None:
    """Put each class's mask contour at the median of the (smooth, positive) mask features with a
    logit slope of 4 per interquartile range, so masks have outlines instead of being all or nothing."""
    seen = []
    logits = model.roi_heads.mask_predictor.mask_fcn_logits
    handle = logits.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    torchvision_run(model, image)
    handle.remove()
    level = torch.cat(seen).mean(dim=1)  # the common smooth map, Tensor[R, 28, 28]
    q25, median, q75 = level.flatten().quantile(torch.tensor([0.25, 0.5, 0.75]))
    scale = 4.0 / (q75 - q25)
    with torch.no_grad():
        logits.weight.mul_(scale)
        logits.bias.copy_(-logits.weight.sum(dim=(1, 2, 3)) * median)


def make_images(seed: int) -> list[torch.Tensor]:
    """Smooth random uint8 RGB images (blobs rather than pixel noise, like real images)."""
    g = torch.Generator().manual_seed(seed)
    images = []
    for h, w in IMAGE_SIZES:
        coarse = torch.rand(1, 3, h // 16 + 1, w // 16 + 1, generator=g)
        smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        images.append((smooth * 255).round().to(torch.uint8))
    return images


def run_with_hooks(model, proposal_module, heads_module, inputs):
    """Call `model(inputs)` in eval mode, also capturing the proposal generator's and ROI heads'
    outputs (raw detections before rescaling and mask pasting)."""
    seen = {}

    def keep(name):
        def hook(module, args, output):
            first = output[0][0]  # (per-image results, losses) -> first image
            # torchvision's postprocess replaces the dict's entries in place: keep the raw ones.
            seen[name] = dict(first) if isinstance(first, dict) else first
        return hook

    hooks = [proposal_module.register_forward_hook(keep("proposals")),
             heads_module.register_forward_hook(keep("raw"))]
    with torch.no_grad():
        outputs = model(inputs)
    for hook in hooks:
        hook.remove()
    return seen["proposals"], seen["raw"], outputs[0]


def torchvision_run(model, image):
    """torchvision's proposals, raw detections and final detections for one image at scale 1."""
    h, w = image.shape[-2:]
    model.transform.min_size = (min(h, w),)
    model.transform.max_size = max(h, w)
    proposals, raw, final = run_with_hooks(model, model.rpn, model.roi_heads, [image.float() / 255])
    return proposals, raw, final


def detrun_run(model, image):
    """detrun's proposals, raw detections and final detections for one image. Eager inference runs
    the parts' tensor-only core (`predict_proposals`, `predict`), not their forward: the proposals
    come from the RPN's Instances API (the same computation), the raw detections from
    ``do_postprocess=False``."""
    h, w = image.shape[-2:]
    inputs = [{"image": image, "height": h, "width": w}]
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        proposals, _ = model.proposal_generator(images, model.backbone(images.tensor), None)
        raw = model.inference(inputs, do_postprocess=False)[0]["instances"]
        final = model(inputs)[0]["instances"]
    return proposals[0], raw, final


def build_detrun(tmp_path, tv_model, with_masks):
    path = tmp_path / "tv_weights.pth"
    torch.save(tv_model.state_dict(), path)
    cfg = get_recipe("mask_rcnn_R50_torchvision").model
    cfg.roi_heads.num_classes = NUM_CLASSES - 1
    cfg.proposal_generator.post_nms_topk = [2000, POST_NMS_TOPK]
    cfg.roi_heads.box_predictor.test_topk_per_image = DETECTIONS
    cfg.weights = str(path)
    if not with_masks:
        cfg.roi_heads.branches = {}
    model = instantiate(cfg).eval()
    return model


def match_detections(tv_boxes, tv_labels, boxes, classes):
    """Index of detrun's detection of the same class and box for each torchvision detection."""
    assert len(boxes) == len(tv_boxes), (len(boxes), len(tv_boxes))
    iou = pairwise_iou(Boxes(tv_boxes), Boxes(boxes))
    iou[(tv_labels - 1)[:, None] != classes[None, :]] = 0  # torchvision label k is detrun class k - 1
    best_iou, index = iou.max(dim=1)
    assert torch.all(best_iou > 0.999), best_iou.min()
    assert len(set(index.tolist())) == len(index)  # one-to-one
    return index


def check_proposals(tv_boxes, proposals):
    """Same boxes in the same order."""
    boxes = proposals.proposal_boxes.tensor
    assert boxes.shape == tv_boxes.shape
    torch.testing.assert_close(boxes, tv_boxes, rtol=1e-4, atol=2e-3)


def dilate(masks, pixels):
    return torch.nn.functional.max_pool2d(masks[:, None].float(), 2 * pixels + 1, 1, pixels)[:, 0] > 0


def check_parity(tv_model, ours, images, with_masks):
    """Compare proposals, raw detections and final detections on each image; return the number compared."""
    total = 0
    for image in images:
        tv_props, tv_raw, tv_final = torchvision_run(tv_model, image)
        our_props, raw, final = detrun_run(ours, image)
        assert torch.equal(tv_raw["boxes"], tv_final["boxes"])  # torchvision really ran at scale 1
        check_proposals(tv_props, our_props)

        assert len(tv_final["boxes"]) >= 20  # the random heads really detect things
        for tv_det, det, boxes in [(tv_raw, raw, raw.pred_boxes.tensor), (tv_final, final, final.pred_boxes.tensor)]:
            index = match_detections(tv_det["boxes"], tv_det["labels"], boxes, det.pred_classes)
            torch.testing.assert_close(boxes[index], tv_det["boxes"], rtol=1e-4, atol=2e-3)
            torch.testing.assert_close(det.scores[index], tv_det["scores"], rtol=1e-4, atol=1e-5)
        assert final.image_size == tuple(image.shape[-2:])
        if with_masks:
            check_masks(tv_raw, raw, tv_final, final)
        total += len(tv_final["boxes"])
    return total


def check_masks(tv_raw, raw, tv_final, final):
    # Mask probabilities in box coordinates (28 x 28): the heads themselves, tightly.
    index = match_detections(tv_raw["boxes"], tv_raw["labels"], raw.pred_boxes.tensor, raw.pred_classes)
    torch.testing.assert_close(raw.pred_masks[index], tv_raw["masks"], rtol=1e-4, atol=1e-4)
    # Pasted masks: the same as pasting torchvision's own probabilities with detrun's paste_masks
    # (up to float noise at pixels of probability ~0.5)...
    index = match_detections(tv_final["boxes"], tv_final["labels"], final.pred_boxes.tensor, final.pred_classes)
    tv_masks, masks = tv_final["masks"][:, 0] >= 0.5, final.pred_masks[index]
    assert masks.dtype == torch.bool and masks.shape == tv_masks.shape
    repasted = paste_masks(tv_raw["masks"], tv_raw["boxes"], final.image_size, threshold=0.5)
    assert (masks != repasted).sum() <= 5
    # ...and torchvision's pasted masks up to the paste methods' difference: outlines up to a
    # pixel apart (IoU ~0.93-0.98 for masks of 400-6000 pixels), isolated pixels aside.
    area = tv_masks.flatten(1).sum(1)
    assert (area > 0).sum() >= len(area) // 2  # masks aren't trivially empty
    outside_band = (masks & ~dilate(tv_masks, 1)) | (tv_masks & ~dilate(masks, 1))
    assert outside_band.sum() <= 0.002 * area.sum()
    iou = (tv_masks & masks).flatten(1).sum(1) / (tv_masks | masks).flatten(1).sum(1).clamp(min=1)
    large = area >= 400
    assert large.sum() >= 10 and iou[large].mean() >= 0.93, iou[large]


@pytest.fixture(scope="module")
def images():
    return make_images(seed=0)


def test_mask_rcnn_matches_torchvision(tmp_path, images):
    tv_model = torchvision_model(maskrcnn_resnet50_fpn, seed=1)
    calibrate_masks_(tv_model, images[0])
    ours = build_detrun(tmp_path, tv_model, with_masks=True)
    assert check_parity(tv_model, ours, images, with_masks=True) == 2 * DETECTIONS


def test_faster_rcnn_matches_torchvision(tmp_path, images):
    tv_model = torchvision_model(fasterrcnn_resnet50_fpn, seed=2)
    ours = build_detrun(tmp_path, tv_model, with_masks=False)
    assert "mask" not in ours.roi_heads.branches
    assert check_parity(tv_model, ours, images, with_masks=False) == 2 * DETECTIONS
