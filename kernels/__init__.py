"""Triton kernels and their launchers (imported as `detrun.kernels`).

Backend choice, fallbacks and validation live in `detrun.ops`, never here.

Triton decides when a kernel is defined whether it is compiled for a GPU or run by its
interpreter (env var TRITON_INTERPRET=1, which also runs CPU tensors). All kernels are defined
on first import of this package, so `INTERPRETED` is the mode of every kernel in this process.
"""
import triton

INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
