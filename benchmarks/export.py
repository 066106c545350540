"""CPU latency of Mask R-CNN R50-FPN at 800x1216: eager detrun, torch.compile'd detrun, detrun's
ONNX export under onnxruntime, and torchvision's maskrcnn_resnet50_fpn, same random weights.

The weights are torchvision's layout (``randomize_`` from ``benchmarks/model.py``: seeded, scaled
so that all 100 detections survive, with masks) loaded into detrun's ``mask_rcnn_R50_torchvision``
(the same architecture and conventions), so all four compute the same detector on the same
image (torchvision's transform at scale 1). Each case is the whole call, image to pasted masks at
the input size: the onnxruntime case runs the exported core (``detrun.export.OnnxModel``) plus
detrun's layer above it (``run_exported``: Instances, mask pasting), like eager. The compiled case
is ``trainer.inference_compile=true`` (``detrun.export.compile_model``, inductor): the backbone, RPN head and
ROI box and mask heads, what runs on dense tensors; proposals, NMS and pasting stay eager.

Median of ``--runs`` interleaved runs after one warm-up (compilation happens there), wall and CPU
time, and the ratio of each to torchvision's eager latency, measured in the same process.

    python benchmarks/export.py --runs 5 [--threads N] [--no-compile]
    python benchmarks/export.py --runs 1 --size 256 320    # a smoke test of the script, minutes
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import model as bench  # noqa: E402
from model import compare, detrun_model, image, randomize_, torchvision_maskrcnn  # noqa: E402

from detrun.export import OnnxModel, export_onnx, run_exported  # noqa: E402
from detrun.export.compile import compile_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: their defaults)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    parser.add_argument("--size", type=int, nargs=2, default=bench.IMAGE_SIZE, metavar=("H", "W"),
                        help="image height and width (default: %(default)s)")
    args = parser.parse_args()
    bench.IMAGE_SIZE = size = tuple(args.size)  # image() draws at bench.IMAGE_SIZE
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tv = torchvision_maskrcnn().eval()
        randomize_(tv)
        tv.transform.min_size, tv.transform.max_size = (min(size),), max(size)  # scale 1
        torch.save(tv.state_dict(), tmp / "maskrcnn.pth")
        ours = detrun_model("mask_rcnn_R50_torchvision", str(tmp / "maskrcnn.pth"), num_classes=90).eval()
        img = image()
        tv_input = [img.float() / 255]
        our_input = [{"image": img, "height": size[0], "width": size[1]}]

        start = time.perf_counter()
        export_onnx(ours, tmp / "mask_rcnn.onnx", height=size[0], width=size[1])
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
            compile_model(compiled)

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
            cases["detrun inference_compile (backbone and heads)"] = run(lambda: compiled(our_input))
        results = compare(cases, args.runs)

    base = results["torchvision maskrcnn_resnet50_fpn (eager)"][0]
    eager = results["detrun eager"][0]
    print(f"\nmask_rcnn_R50 at {size[0]}x{size[1]}, CPU, {torch.get_num_threads()} threads, "
          f"median of {args.runs}")
    print(f"{'case':<56}{'wall s':>8}{'CPU s':>8}{'/ torchvision':>15}{'/ detrun eager':>16}")
    for name, (wall, cpu, _) in results.items():
        print(f"{name:<56}{wall:>8.2f}{cpu:>8.2f}{wall / base:>15.2f}{wall / eager:>16.2f}")


if __name__ == "__main__":
    main()
