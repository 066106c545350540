"""Tests run the Triton kernels on CPU through Triton's interpreter.

Triton fixes a kernel's mode when the kernel is defined, reading TRITON_INTERPRET then; pytest
imports this file before any test module, so setting it here (before `detrun.kernels` is first
imported) makes every kernel interpreted for the whole session (run with TRITON_INTERPRET=0
and the Triton cases are skipped: compiled kernels do not take CPU tensors).
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
