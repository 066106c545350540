#!/usr/bin/env bash
# One-command GPU check (see benchmarks/gpu_check.py): CUDA op tests, Triton kernels against
# torchvision's CUDA ops, Mask R-CNN R50 training step (amp off/bf16/fp16) and inference latency.
#   bash benchmarks/gpu_check.sh [--out gpu_check.md] [--runs 5] [--sections tests nms ...]
# The interpreter: $PYTHON, else the repository's .venv if there is one, else `python`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python; fi
fi
# Compiled Triton kernels on CUDA tensors: the tests default to the CPU interpreter.
export TRITON_INTERPRET=0
exec "$PYTHON" "$root/benchmarks/gpu_check.py" "$@"
