"""Time detrun.ops backends on detection-sized inputs and print one markdown table.

    python benchmarks/ops.py [--runs 5] [--threads N] [--skip-triton] [--ops nms ...]

With a CUDA device, tensors live on the GPU and Triton is compared with torchvision's CUDA ops.
Without one, the CPU backends are timed at full size and Triton runs under its interpreter
(TRITON_INTERPRET=1, set here before detrun.kernels is imported) on reduced sizes only, because it
executes every program as NumPy: those rows say so and compare with torchvision at the same size.
Every number is the median of --runs timed calls after one warm-up; "ratio" divides by the
reference row of the same case in the same process (torchvision, or for paste_masks the per-mask
F.interpolate loop, torchvision having no paste op).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

from detrun.ops import batched_nms, nms, paste_masks, roi_align  # noqa: E402

DEVICE = torch.device("cuda" if CUDA else "cpu")


def median_ms(fn, runs: int, setup=None) -> float:
    """Median wall time (ms) of fn(setup()) over `runs` calls after one warm-up; setup is untimed."""
    times = []
    for i in range(runs + 1):
        arg = setup() if setup else None
        if CUDA:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        if CUDA:
            torch.cuda.synchronize()
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rois_for(n_boxes: int, img_h: int, img_w: int, min_side: float, max_side: float, seed: int) -> torch.Tensor:
    """(K, 5) boxes, sides uniform in [min_side, max_side] pixels, centers anywhere in the image."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.empty(n_boxes, 2).uniform_(min_side, max_side, generator=g)
    xy = torch.rand(n_boxes, 2, generator=g) * torch.tensor([img_w, img_h])
    return torch.cat([torch.zeros(n_boxes, 1), xy - wh / 2, xy + wh / 2], 1).to(DEVICE)


def roi_align_rows(backends, runs, channels, h, w, n_boxes, max_side, note):
    # FPN level P2 (stride 4) of an 800x1216 image; Detectron2's ROIAlignV2 settings (aligned,
    # adaptive sampling); box sides 8-max_side px (160: 2-40 map cells).
    x = torch.randn(1, channels, h, w, device=DEVICE)
    rois = rois_for(n_boxes, h * 4, w * 4, 8, max_side, seed=0)
    rows = []
    for size in (7, 14):
        grad = torch.randn(n_boxes, channels, size, size, device=DEVICE)
        case = f"roi_align {n_boxes} boxes, {channels}x{h}x{w}, {size}x{size}{note}"

        def forward(b):
            with torch.no_grad():
                if b == "torchvision (reference)":
                    return torchvision.ops.roi_align(x, rois, size, 0.25, 0, True)
                return roi_align(x, rois, size, 0.25, 0, True, backend=b)

        def graph(b):
            xr = x.detach().requires_grad_()
            if b == "torchvision (reference)":
                return torchvision.ops.roi_align(xr, rois, size, 0.25, 0, True)
            return roi_align(xr, rois, size, 0.25, 0, True, backend=b)

        for b in ["torchvision (reference)", *backends]:
            rows.append((case + " fwd", b, median_ms(lambda b=b: forward(b), runs)))
        for b in ["torchvision (reference)", *backends]:
            rows.append((case + " bwd", b, median_ms(lambda out: out.backward(grad), runs, setup=lambda b=b: graph(b))))
    return rows


def proposals(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RPN-like boxes: jittered around 100 objects of an 800x1216 image, sides 20-220 px."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(100, 2, generator=g) * torch.tensor([1216.0, 800.0])
    ctr = centers[torch.randint(0, 100, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 20
    wh = 20 + torch.rand(n, 2, generator=g) * 200
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], 1)
    scores = torch.rand(n, generator=g)
    classes = torch.randint(0, 80, (n,), generator=g)
    return boxes.to(DEVICE), scores.to(DEVICE), classes.to(DEVICE)


def nms_rows(backends, runs, sizes, note):
    rows = []
    for n in sizes:
        boxes, scores, classes = proposals(n, seed=n)
        for b in ["torchvision (reference)", *backends]:
            fn = ((lambda: torchvision.ops.nms(boxes, scores, 0.7)) if b.startswith("torchvision ")
                  else (lambda b=b: nms(boxes, scores, 0.7, backend=b)))
            rows.append((f"nms {n} boxes, IoU 0.7{note}", b, median_ms(fn, runs)))
        for b in ["torchvision (reference)", *backends]:
            fn = ((lambda: torchvision.ops.batched_nms(boxes, scores, classes, 0.5)) if b.startswith("torchvision ")
                  else (lambda b=b: batched_nms(boxes, scores, classes, 0.5, backend=b)))
            rows.append((f"batched_nms {n} boxes, 80 classes, IoU 0.5{note}", b, median_ms(fn, runs)))
    return rows


def paste_loop(masks: torch.Tensor, boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Baseline: per mask, F.interpolate to its integer box, threshold, copy into the zero image."""
    out = torch.zeros((len(masks), h, w), dtype=torch.bool, device=masks.device)
    for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
        m = F.interpolate(masks[i][None, None], size=(bh, bw), mode="bilinear", align_corners=False)[0, 0] >= 0.5
        ox1, oy1, ox2, oy2 = max(x1, 0), max(y1, 0), min(x1 + bw, w), min(y1 + bh, h)
        if ox2 > ox1 and oy2 > oy1:
            out[i, oy1:oy2, ox1:ox2] = m[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1]
    return out


def paste_rows(backends, runs, n_masks, h, w, note):
    # Mask R-CNN inference output: 28x28 masks, detections with sides 20-400 px.
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(n_masks, 28, 28, generator=g).to(DEVICE)
    boxes = rois_for(n_masks, h, w, 20, 400 * min(h / 800, 1), seed=1)[:, 1:]
    case = f"paste_masks {n_masks} masks 28x28 into {h}x{w}{note}"
    rows = [(case, "per-mask interpolate loop (reference)", median_ms(lambda: paste_loop(masks, boxes, h, w), runs))]
    for b in backends:
        rows.append((case, b, median_ms(lambda b=b: paste_masks(masks, boxes, (h, w), backend=b), runs)))
    return rows


OPS = ("roi_align", "nms", "paste_masks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--skip-triton", action="store_true", help="leave out the (interpreted on CPU) Triton rows")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS), help="time only these ops (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {DEVICE.type}" + (f" ({torch.cuda.get_device_name(0)})" if CUDA else "")
          + f", torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads,"
          f" median of {args.runs} runs, load average {os.getloadavg()[0]:.1f}\n")
    full = ["torch"] + (["triton"] if CUDA and not args.skip_triton else [])
    full_size = {"roi_align": lambda: roi_align_rows(full, args.runs, 256, 200, 304, 1000, 160, ""),
                 "nms": lambda: nms_rows(full, args.runs, (1000, 5000, 20000), ""),
                 "paste_masks": lambda: paste_rows(full, args.runs, 100, 800, 1216, "")}
    note = " (reduced: Triton interpreted)"
    reduced = {"roi_align": lambda: roi_align_rows(["triton"], args.runs, 16, 50, 76, 20, 40, note),
               "nms": lambda: nms_rows(["triton"], args.runs, (1000,), note),
               "paste_masks": lambda: paste_rows(["torch", "triton"], args.runs, 10, 200, 304, note)}
    rows = [row for op in args.ops for row in full_size[op]()]
    if not CUDA and not args.skip_triton:
        rows += [row for op in args.ops for row in reduced[op]()]
    print("| case | backend | ms | ratio |\n|---|---|---|---|")
    reference = {}
    for case, backend, ms in rows:
        if backend.endswith("(reference)"):
            reference[case] = ms
        print(f"| {case} | {backend} | {ms:.1f} | {ms / reference[case]:.2f} |")


if __name__ == "__main__":
    main()
