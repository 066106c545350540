"""Triton kernels and their launchers (imported as `detrun.kernels`).

Backend choice, fallbacks and validation live in `detrun.ops`, never here.

Triton decides when a kernel is defined whether it is compiled for a GPU or run by its
interpreter (env var TRITON_INTERPRET=1, which also runs CPU tensors). Importing this package
defines every kernel at once, so `INTERPRETED` is the mode of all kernels in this process.
"""
import triton

INTERPRETED: bool = bool(triton.knobs.runtime.interpret)

from . import nms, paste_masks, roi_align  # noqa: E402  (after INTERPRETED: all kernels share the mode recorded above)

__all__ = ["INTERPRETED", "nms", "paste_masks", "roi_align"]
