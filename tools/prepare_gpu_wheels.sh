#!/usr/bin/env bash
# Downloads, on a machine with the package registry, the wheels that tools/gpu_check.sh
# installs on the GPU machine, which has no network: the packages that the GPU tests and
# benchmarks import beyond those of the machine's image (torch, triton, numpy,
# opencv-python-headless), with their dependencies, as CPython PYTHON_VERSION manylinux
# x86_64 wheels. The check installs them --no-index --no-deps into a folder of their own.
#
#   bash tools/prepare_gpu_wheels.sh [PYTHON_VERSION [DEST]]
#
# PYTHON_VERSION: the GPU machine's Python, 3.12 by default; DEST: .whl by default, which
# git ignores, to be copied to the GPU machine with the tree. DEST's old wheels are removed
# first: two versions of one package would stop the install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION=${1:-3.12}
DEST=${2:-.whl}
REQUIREMENTS=(pytest pytest-xdist safetensors av pillow tqdm)
# At most 64 MiB go to the GPU machine: the wheels, and this tree's files that git tracks
# or would (the untracked ones it does not ignore); some room is left for what comes later.
MAX_TRAVEL_MIB=60

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --only-binary=:all: --implementation cp \
    --python-version "$PYTHON_VERSION" "${platforms[@]}" --dest "$DEST" "${REQUIREMENTS[@]}"

ls -1 "$DEST"/*.whl
mib() { echo $((($1 + 2 ** 20 - 1) / 2 ** 20)); } # bytes, in MiB rounded up
wheels=$(cat "$DEST"/*.whl | wc -c)
tree=$( { git ls-files -z --cached --others --exclude-standard |
    xargs -0 stat -c %s 2>/dev/null || true; } | awk '{ bytes += $1 } END { print bytes + 0 }')
travel=$(mib $((wheels + tree)))
echo "$(ls "$DEST"/*.whl | wc -l) wheels for CPython $PYTHON_VERSION in $DEST: $(mib "$wheels")" \
    "MiB; with this tree $travel MiB go to the GPU machine (at most 64)"
if ((travel > MAX_TRAVEL_MIB)); then
    echo "more than $MAX_TRAVEL_MIB MiB to copy to the GPU machine" >&2
    exit 1
fi
