#!/usr/bin/env bash
# GPU device check: index build, serve, search and caption on CUDA in under 5 minutes; throughput
# (images/s embedded, queries/s served, captions/s) goes into BENCHMARKS.md. On a host without CUDA it
# says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! command -v "$PY" >/dev/null; then
  echo "bench/gpu.sh: no Python at $PY (run make setup, or set PYTHON=/path/to/venv/bin/python)" >&2
  exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "bench/gpu.sh needs a CUDA GPU (torch.cuda.is_available() is False here); nothing run."
  exit 0
fi
exec timeout 300 "$PY" bench/gpu.py "$@"
