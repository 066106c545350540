"""Triton kernels and their launchers (imported as `detrun.kernels`).

Backend choice, fallbacks and validation live in `detrun.ops`, never here.
"""
