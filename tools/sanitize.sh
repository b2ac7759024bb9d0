#!/usr/bin/env bash
# The CPU kernels under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Builds fused_inpaint._C with FUSED_INPAINT_SANITIZE=1 (setup.py) into a folder of its own,
# beside a linked copy of the package (the in-tree extension is left alone), proves the
# sanitizers live (a positive control must abort on each kind of report, and the extension
# must carry their hooks), then runs the tests against that build with libasan preloaded.
# The tests run on every core (pytest-xdist): any report aborts its worker, which fails the
# test it ran and the run, and goes to stderr (pytest captures only Python's streams).
# Triton's cases are deselected where they have their own test (a -k of the caller's
# replaces the script's selection).
#
# usage: tools/sanitize.sh [--quick] [pytest arguments]
#   --quick   the adversarial suite only, its boundary size 2^24 + 4 (what CI runs)
#   default   the op tests and the adversarial suite
#   FUSED_INPAINT_SANITIZE_DIR   the build folder, default build/sanitize
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tests=(tests/test_edges.py tests/test_flow_warp.py tests/test_fb_validity.py
  tests/test_temporal_shift.py tests/test_temporal_shift_align.py tests/test_convlstm.py
  tests/test_flow_propagate.py tests/test_propagation_gather.py)
# Triton's interpreter runs no C++ of the package.
select="not triton"
if [[ ${1:-} == --quick ]]; then
  # Of the boundary sizes, the first past float32's exact integers (2^24 + 4).
  tests=(tests/test_edges.py)
  select="not triton and not 2p24m1 and not 2p24-H and not 2p25"
  shift
fi

build=${FUSED_INPAINT_SANITIZE_DIR:-build/sanitize}
mkdir -p "$build"
build=$(cd "$build" && pwd)

echo "sanitize: building the CPU extension in $build"
FUSED_INPAINT_SANITIZE=1 FUSED_INPAINT_SKIP_CUDA_BUILD=1 \
  python setup.py --quiet build_ext --build-lib "$build/lib" --build-temp "$build/tmp" \
  >"$build/build.log" 2>&1 || { tail -n 40 "$build/build.log"; exit 1; }

# The package as symlinks to the working tree, with the sanitized extension in it.
rm -rf "$build/pkg"
mkdir -p "$build/pkg"
cp -rs "$root/fused_inpaint" "$build/pkg/"
find "$build/pkg" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$build/pkg/fused_inpaint/_C.abi3.so"
cp "$build/lib/fused_inpaint/_C.abi3.so" "$build/pkg/fused_inpaint/_C.abi3.so"

# libasan first; libstdc++ with it, or ASan finds no __cxa_throw to wrap (Python itself does
# not load libstdc++) and aborts at the first C++ exception, a kernel's argument check.
LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(readlink -f "$(g++ -print-file-name=libstdc++.so)")"
export LD_PRELOAD
# allocator_may_return_null: an impossible allocation fails like torch's own allocator does
# (the tests ask for one), instead of aborting.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Positive control: code built with the same flags, loaded into Python the same way, must
# abort with each report.
flags=$(python -c "import setup; print(' '.join(setup.SANITIZE_FLAGS))")
cat >"$build/control.cpp" <<'EOF'
#include <cstdint>
// UBSan's object-size check would see this read first: here ASan must.
extern "C" __attribute__((no_sanitize("undefined"))) int read_past_end(int n) {
  int* p = new int[4];
  const int v = p[n];  // n = 4: one past the end
  delete[] p;
  return v;
}
extern "C" int64_t signed_overflow(int64_t n) { return INT64_MAX - 1 + n; }
extern "C" int64_t float_cast_overflow(float v) { return static_cast<int64_t>(v); }
EOF
# shellcheck disable=SC2086
g++ $flags -shared -fPIC -o "$build/control.so" "$build/control.cpp"
control() {  # control CALL EXPECTED: the call must abort with EXPECTED in its report
  local out
  if out=$(python -c "import ctypes; lib = ctypes.CDLL('$build/control.so'); $1" 2>&1); then
    echo "sanitize: FAILED: the positive control $1 ran without a report" >&2
    exit 1
  fi
  if ! grep -q "$2" <<<"$out"; then
    echo "sanitize: FAILED: the positive control $1 did not report '$2':" >&2
    echo "$out" | tail -n 20 >&2
    exit 1
  fi
  echo "sanitize: positive control fired: $2"
}
control "lib.read_past_end(4)" "heap-buffer-overflow"
control "lib.signed_overflow(2)" "signed integer overflow"
control "lib.float_cast_overflow.argtypes = [ctypes.c_float]; lib.float_cast_overflow(1e30)" \
  "outside the range of representable values"
symbols=$(nm -D "$build/pkg/fused_inpaint/_C.abi3.so")
for hook in __asan_report_load4 __ubsan_handle_add_overflow_abort \
  __ubsan_handle_float_cast_overflow_abort; do
  if ! grep -q "$hook" <<<"$symbols"; then
    echo "sanitize: FAILED: the extension has no $hook: not built with the sanitizers" >&2
    exit 1
  fi
done
echo "sanitize: the extension carries the sanitizers' hooks"

cd "$build/pkg"
export PYTHONPATH=$build/pkg
python -c "import fused_inpaint._C as c, sys; assert c.__file__.startswith('$build'), c.__file__"
python -m pytest -p no:cacheprovider -p no:randomly -q -n auto --capture=sys \
  --rootdir "$root" -c "$root/pyproject.toml" -k "$select" \
  "${tests[@]/#/$root/}" "$@"
