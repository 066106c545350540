"""Compile every Triton kernel for an sm_80 GPU without one (run as a script, TRITON_INTERPRET unset).

The interpreter runs kernels as NumPy and skips Triton's type checks and code generation; this
catches kernels that would not compile for a real GPU. Prints one line per compiled variant.
"""
import itertools

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from detrun.kernels import nms, paste_masks, roi_align

ROI_ARGS = {"rois_ptr": "*fp32", "C": "i32", "H": "i32", "W": "i32", "stride_n": "i32", "stride_c": "i32",
            "stride_h": "i32", "stride_w": "i32", "spatial_scale": "fp32", "offset": "fp32", "sampling_ratio": "i32"}


def variants():
    # Each kernel in two dtypes with a few of its tile configs (every compile costs ~0.3 s).
    for dtype, config in itertools.product(("fp32", "bf16"), roi_align._CONFIGS[::4]):
        for backward, dst in ((False, f"*{dtype}"), (True, "*fp32")):
            meta = {"OH": 7, "OW": 7, "ALIGNED": True, "BACKWARD": backward, **config.kwargs}
            yield roi_align._roi_align, {"src_ptr": f"*{dtype}", "dst_ptr": dst, **ROI_ARGS}, meta, config
    for dtype, config in zip(("fp16", "bf16"), paste_masks._CONFIGS[::2]):
        for out, thresholded in (("*i1", True), (f"*{dtype}", False)):
            sig = {"masks_ptr": f"*{dtype}", "boxes_ptr": "*fp32", "out_ptr": out, "H": "i32", "W": "i32",
                   "MH": "i32", "MW": "i32", "threshold": "fp32"}
            yield paste_masks._paste_masks.fn, sig, {"THRESHOLD": thresholded, **config.kwargs}, config
    sig = {"boxes_ptr": "*fp32", "cls_ptr": "*i64", "mask_ptr": "*i32", "n": "i32", "n_words": "i32",
           "threshold": "fp32"}
    for has_cls in (True, False):
        yield nms._suppression_mask, sig, {"HAS_CLS": has_cls, "BLOCK_R": nms._BLOCK_R, "WORDS": nms._WORDS}, None
    sig = {"mask_ptr": "*i32", "removed_ptr": "*i32", "keep_ptr": "*i8", "n": "i32", "n_words": "i32"}
    yield nms._sweep, sig, {"CHUNK": nms._CHUNK}, None


def main() -> None:
    assert not triton.knobs.runtime.interpret, "run with TRITON_INTERPRET unset"
    target = GPUTarget("cuda", 80, 32)
    for fn, sig, meta, config in variants():
        sig = {name: "constexpr" if name in meta else sig[name] for name in fn.arg_names}
        options = {"num_warps": config.num_warps if config else 4}
        compiled = triton.compile(ASTSource(fn, sig, constexprs=meta), target=target, options=options)
        assert compiled.asm["cubin"], fn.__name__
        print(fn.__name__, meta, options, "ok")


if __name__ == "__main__":
    main()
