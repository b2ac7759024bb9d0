#!/usr/bin/env bash
# What can be proven of the GPU check without a GPU, from a clean clone: in a fresh virtual
# environment holding only what the GPU machine's image does (torch, here a CPU build,
# triton, numpy, opencv-python-headless), the wheels that tools/prepare_gpu_wheels.sh
# prepares for that environment's Python install --no-index, then GPU_CHECK_DRY_RUN=1
# tools/gpu_check.sh walks every step: the GPU tests and the sanitizers' subset collect
# with no error, every benchmark starts, $OUT is written (./gpu_out unless OUT is set).
#
#   bash tools/gpu_dry_run.sh   # environment and wheels in ${TMPDIR:-/tmp}
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_INDEX=${GPU_DRY_RUN_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
SCRATCH=${TMPDIR:-/tmp}/fused-inpaint-gpu-dry-run
rm -rf "$SCRATCH"
python3 -m venv "$SCRATCH/venv"
python=$SCRATCH/venv/bin/python
"$python" -m pip install --quiet --index-url "$TORCH_INDEX" torch
"$python" -m pip install --quiet triton numpy opencv-python-headless
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
bash tools/prepare_gpu_wheels.sh "$version" "$SCRATCH/wheels"
GPU_CHECK_DRY_RUN=1 GPU_CHECK_PYTHON=$python GPU_CHECK_WHEELS=$SCRATCH/wheels \
    bash tools/gpu_check.sh
