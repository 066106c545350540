"""CPU latency of Mask R-CNN R50-FPN at 800x1216: eager detrun, torch.compile'd detrun, detrun's
ONNX export under onnxruntime, and torchvision's maskrcnn_resnet50_fpn, same random weights.

The weights are torchvision's layout (``randomize_`` from ``benchmarks/model.py``: seeded, scaled
so that all 100 detections survive, with masks) loaded into detrun's ``mask_rcnn_R50_torchvision``
(the same architecture and conventions), so all four compute the same detector on the same
image (torchvision's transform at scale 1). Each case is the whole call, image to pasted masks at
the input size: the onnxruntime case runs the exported core (``detrun.export.OnnxModel``) plus
detrun's layer above it (``run_exported``: Instances, mask pasting), like eager. The compiled case
compiles the backbone and the ROI heads' box and mask heads (``torch.compile``, inductor), what
runs on dense tensors; proposals, NMS and pasting stay eager.

Median of ``--runs`` interleaved runs after one warm-up (compilation happens there), wall and CPU
time, and the ratio of each to torchvision's eager latency, measured in the same process.

    python benchmarks/export.py --runs 5 [--threads N] [--no-compile]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from model import IMAGE_SIZE, compare, detrun_model, image, randomize_, torchvision_maskrcnn  # noqa: E402

from detrun.export import OnnxModel, export_onnx, run_exported  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their defaults)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tv = torchvision_maskrcnn().eval()
        randomize_(tv)
        tv.transform.min_size, tv.transform.max_size = (min(IMAGE_SIZE),), max(IMAGE_SIZE)  # scale 1
        torch.save(tv.state_dict(), tmp / "maskrcnn.pth")
        ours = detrun_model("mask_rcnn_R50_torchvision", str(tmp / "maskrcnn.pth"), num_classes=90).eval()
        img = image()
        tv_input = [img.float() / 255]
        our_input = [{"image": img, "height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1]}]

        start = time.perf_counter()
        export_onnx(ours, tmp / "mask_rcnn.onnx", height=IMAGE_SIZE[0], width=IMAGE_SIZE[1])
        print(f"ONNX export: {time.perf_counter() - start:.0f} s, {(tmp / 'mask_rcnn.onnx').stat().st_size / 2**20:.0f} MiB")
        runtime = OnnxModel(tmp / "mask_rcnn.onnx")
        if args.threads:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = args.threads
            runtime.session = onnxruntime.InferenceSession(str(tmp / "mask_rcnn.onnx"), options,
                                                           providers=["CPUExecutionProvider"])

        compiled = None
        if not args.no_compile:
            compiled = detrun_model("mask_rcnn_R50_torchvision", str(tmp / "maskrcnn.pth"), num_classes=90).eval()
            compiled.backbone = torch.compile(compiled.backbone)
            compiled.roi_heads.box_head = torch.compile(compiled.roi_heads.box_head)
            mask_head = compiled.roi_heads.branches["mask"].head
            mask_head.layers = torch.compile(mask_head.layers, dynamic=True)

        with torch.no_grad():
            counts = {"torchvision": len(tv(tv_input)[0]["boxes"]), "eager": len(ours(our_input)[0]["instances"]),
                      "onnxruntime": len(run_exported(ours, runtime, our_input)[0]["instances"])}
        print("detections:", counts)

        def run(fn):
            def call():
                with torch.no_grad():
                    fn()
            return call

        cases = {
            "torchvision maskrcnn_resnet50_fpn (eager)": run(lambda: tv(tv_input)),
            "detrun eager": run(lambda: ours(our_input)),
            "detrun onnxruntime (+ eager pasting)": run(lambda: run_exported(ours, runtime, our_input)),
        }
        if compiled is not None:
            start = time.perf_counter()
            run(lambda: compiled(our_input))()
            print(f"torch.compile warm-up (compilation): {time.perf_counter() - start:.0f} s")
            cases["detrun torch.compile (backbone, box and mask heads)"] = run(lambda: compiled(our_input))
        results = compare(cases, args.runs)

    base = results["torchvision maskrcnn_resnet50_fpn (eager)"][0]
    eager = results["detrun eager"][0]
    print(f"\nmask_rcnn_R50 at {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, CPU, {torch.get_num_threads()} threads, "
          f"median of {args.runs}")
    print(f"{'case':<56}{'wall s':>8}{'CPU s':>8}{'/ torchvision':>15}{'/ detrun eager':>16}")
    for name, (wall, cpu, _) in results.items():
        print(f"{name:<56}{wall:>8.2f}{cpu:>8.2f}{wall / base:>15.2f}{wall / eager:>16.2f}")


if __name__ == "__main__":
    main()
