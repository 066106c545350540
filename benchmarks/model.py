"""Mask R-CNN and RetinaNet R50-FPN on CPU: detrun vs torchvision, same weights, same images.

Inference: ``mask_rcnn_R50_torchvision`` vs torchvision's ``maskrcnn_resnet50_fpn`` and
``retinanet_R50_torchvision`` vs its ``retinanet_resnet50_fpn``, on one 800x1216 image
(torchvision's transform set to scale 1, so both see the same pixels), with random weights
scaled like the parity tests' so that both return the full 100 detections (with masks), in each
of ``--precisions``: fp32, and bf16 (both models under ``torch.autocast("cpu", torch.bfloat16)``,
what ``trainer.inference_amp=bf16`` does); ``--channels-last`` adds detrun fp32 with its weights
in channels-last memory format. Training: one step (forward + backward + SGD) on a batch of 2 images with 6 objects each,
detrun's ``mask_rcnn_R50`` (Detectron2's defaults) and ``mask_rcnn_R50_torchvision`` vs
torchvision's model. Both torchvision models are built as with pretrained weights (frozen BN,
stem + res2 frozen), which is how they are used.

Per case: median of ``--runs`` interleaved runs (after one warm-up) of wall time and of the
process's CPU time, and the peak resident memory above the level before the run (Linux
VmHWM, reset between runs). Ratio = detrun / torchvision, measured in the same process.

    python benchmarks/model.py --runs 5            # inference and training
    python benchmarks/model.py --runs 7 --no-train --models retinanet
    python benchmarks/model.py --runs 3 --no-train --models maskrcnn --precisions fp32 bf16 --channels-last

The AP change from bf16 on shapes is measured by ``benchmarks/precision_ap.py``.
"""
from __future__ import annotations

import argparse
import copy
import math
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.retinanet import _default_anchorgen
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from detrun.config import get_recipe, instantiate
from detrun.structures import BitMasks, Boxes, Instances

IMAGE_SIZE = (800, 1216)


def torchvision_maskrcnn() -> MaskRCNN:
    """torchvision's maskrcnn_resnet50_fpn as built with pretrained weights: frozen BN, 3 trainable stages."""
    backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), trainable_layers=3)
    return MaskRCNN(backbone, num_classes=91)


def torchvision_retinanet() -> RetinaNet:
    """torchvision's retinanet_resnet50_fpn as built with pretrained weights (frozen BN, C3-C5, P6/P7 from P5)."""
    backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), trainable_layers=3,
                                     returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    # 100 detections per image like detrun's recipes (torchvision's class defaults to 300).
    return RetinaNet(backbone, num_classes=91, anchor_generator=_default_anchorgen(), detections_per_img=100)


def randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Seeded weights keeping activations O(1); confident class scores so all 100 detections survive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
            elif t.dim() == 1:  # norm scales: damp residual branches
                t.copy_(torch.rand(t.shape, generator=g) * 0.3 + 0.2)
            else:
                std = math.sqrt(2.0 / math.prod(t.shape[1:])) * (3.0 if "cls_score" in name else 1.0)
                t.copy_(torch.randn(t.shape, generator=g) * std)


def detrun_model(recipe: str, weights: str | None, num_classes: int) -> torch.nn.Module:
    cfg = get_recipe(recipe).model
    if "roi_heads" in cfg:
        cfg.roi_heads.num_classes = num_classes
    else:
        cfg.num_classes = num_classes
    cfg.weights = weights
    return instantiate(cfg)


def peak_rss_kib() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1])


def current_rss_kib() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())[1])


def measure(fn) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MiB above the start) of one call."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    start_rss = current_rss_kib()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, (peak_rss_kib() - start_rss) / 1024


def compare(cases: dict[str, callable], runs: int) -> dict[str, tuple[float, float, float]]:
    """Median (wall, CPU, peak MiB) per case over `runs` interleaved runs, after one warm-up each."""
    for fn in cases.values():
        fn()
    samples = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            samples[name].append(measure(fn))
    return {name: tuple(statistics.median(s[i] for s in runs_) for i in range(3)) for name, runs_ in samples.items()}


def image(seed: int = 0) -> torch.Tensor:
    """A smooth random uint8 RGB image of IMAGE_SIZE."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, IMAGE_SIZE[0] // 32, IMAGE_SIZE[1] // 32, generator=g)
    return (torch.nn.functional.interpolate(coarse, size=IMAGE_SIZE, mode="bilinear")[0] * 255).to(torch.uint8)


def ground_truth(seed: int, num: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`num` random boxes (XYXY), classes 1..80 and box-filling masks."""
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_SIZE
    xy = torch.rand(num, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = (torch.rand(num, 2, generator=g) * 0.25 + 0.05) * torch.tensor([w, h])
    boxes = torch.cat([xy, xy + wh], dim=1).round()
    masks = torch.zeros(num, h, w, dtype=torch.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
        m[y1:y2, x1:x2] = 1
    return boxes, torch.randint(1, 81, (num,), generator=g), masks


# --models choice -> (torchvision builder, its name, detrun recipe, detrun classes for torchvision's 91)
MODELS = {
    "maskrcnn": (torchvision_maskrcnn, "maskrcnn_resnet50_fpn", "mask_rcnn_R50_torchvision", 90),
    "retinanet": (torchvision_retinanet, "retinanet_resnet50_fpn", "retinanet_R50_torchvision", 91),
}


# --precisions choice -> autocast dtype (None: full precision)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def inference_cases(tmp: Path, model: str, precisions: list[str], channels_last: bool) -> tuple[dict, str]:
    """{case name: run one inference} for torchvision's and detrun's `model` in each of
    `precisions` (and detrun fp32 channels-last), and the baseline's name (torchvision, first precision)."""
    build_tv, tv_name, recipe, num_classes = MODELS[model]
    tv = build_tv().eval()
    randomize_(tv)
    tv.transform.min_size, tv.transform.max_size = (min(IMAGE_SIZE),), max(IMAGE_SIZE)  # scale 1
    torch.save(tv.state_dict(), tmp / f"{model}.pth")
    ours = detrun_model(recipe, str(tmp / f"{model}.pth"), num_classes=num_classes).eval()
    img = image()
    tv_input, our_input = [img.float() / 255], [{"image": img, "height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1]}]
    with torch.no_grad():
        n_tv, n_ours = len(tv(tv_input)[0]["boxes"]), len(ours(our_input)[0]["instances"])
    print(f"{model} inference detections: torchvision {n_tv}, detrun {n_ours}")

    def run(net, inputs, dtype):
        def call():
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                net(inputs)
        return call

    cases = {}
    for precision in precisions:
        dtype = PRECISIONS[precision]
        cases[f"torchvision {tv_name} {precision}"] = run(tv, tv_input, dtype)
        cases[f"detrun {recipe} {precision}"] = run(ours, our_input, dtype)
        if channels_last and dtype is None:
            ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)
            cases[f"detrun {recipe} {precision} channels-last"] = run(ours_cl, our_input, dtype)
    return cases, next(iter(cases))


def training_cases() -> dict:
    gts = [ground_truth(seed) for seed in (1, 2)]
    images = [image(seed) for seed in (1, 2)]
    tv = torchvision_maskrcnn().train()
    tv_opt = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    tv.transform.min_size, tv.transform.max_size = (min(IMAGE_SIZE),), max(IMAGE_SIZE)
    tv_inputs = [im.float() / 255 for im in images]
    tv_targets = [{"boxes": b, "labels": c, "masks": m} for b, c, m in gts]
    our_inputs = []
    for im, (b, c, m) in zip(images, gts):
        instances = Instances(IMAGE_SIZE, gt_boxes=Boxes(b), gt_classes=c - 1, gt_masks=BitMasks(m.bool()))
        our_inputs.append({"image": im, "instances": instances})

    def step(model, optimizer, *inputs):
        def run():
            losses = model(*inputs)
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()
        return run

    cases = {"torchvision maskrcnn_resnet50_fpn": step(tv, tv_opt, tv_inputs, tv_targets)}
    for recipe in ("mask_rcnn_R50", "mask_rcnn_R50_torchvision"):
        model = detrun_model(recipe, None, num_classes=80).train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        cases[f"detrun {recipe}"] = step(model, opt, our_inputs)
    return cases


def print_table(title: str, results: dict, baseline: str) -> None:
    base_wall, base_cpu, _ = results[baseline]
    print(f"\n{title}")
    print("| model | wall s | CPU s | peak MiB | wall ratio | CPU ratio |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu, mem) in results.items():
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {mem:.0f} | {wall / base_wall:.2f} | {cpu / base_cpu:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median reported)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step comparison")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS),
                        help="architectures whose inference is compared")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS),
                        help="inference precisions (autocast); ratios are against torchvision in the first")
    parser.add_argument("--channels-last", action="store_true",
                        help="also time detrun fp32 inference with channels-last weights")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the core count)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16 (oneDNN) {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cases, baseline = inference_cases(Path(tmp), model, args.precisions, args.channels_last)
            results = compare(cases, args.runs)
        print_table(f"Inference, 1 image ({model})", results, baseline)
    if not args.no_train:
        results = compare(training_cases(), args.runs)
        print_table("Training step, batch 2", results, "torchvision maskrcnn_resnet50_fpn")


if __name__ == "__main__":
    main()
