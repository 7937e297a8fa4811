#!/usr/bin/env bash
# GPU check: every suite on CUDA, then the suite's medians at batch 64 beside CUDA-event
# timings of the same callables taken in the same process (tools/gpu_check.py). Exit 1 when a
# median is more than 5% off its CUDA-event median. Needs a CUDA machine with this package
# installed (ptflops, torch-pruning, mlxtend too; torchao only for the CPU int8 states, which
# skip on CUDA anyway). Usage: tools/gpu_check.sh [OUT_DIR] [extra pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
shift || true
mkdir -p "$out"
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: nothing to check")'
python -m pytest benchmarks --benchmark-only --is-device cuda --is-batch-size 1,64 --is-cuda-events 50 \
    --benchmark-json "$out/suite.json" --benchmark-save-data -p no:cacheprovider -q "$@"
python tools/gpu_check.py "$out/suite.json" --batch 64 --tolerance 0.05
