#!/usr/bin/env bash
# The whole GPU check in one call, on a machine with a CUDA GPU, a CUDA build of torch,
# triton, nvcc and compute-sanitizer, and no network. Steps:
#   env       nvidia-smi, compiler and library versions
#   install   wheels from .whl/ if present (pytest, ...), then the package with its CUDA
#             kernels for FUSED_INPAINT_CUDA_ARCHS (default "90" here, to build faster)
#   tests     python -m pytest tests -m gpu -x -q
#   memcheck  compute-sanitizer memcheck over the op tests
#   bench_*   every benchmarks/bench_*.py as a GPU benchmark, tables into $OUT/results
# Each step logs to $OUT/<step>.log and runs under a time limit, so that the whole check
# ends within GPU_CHECK_BUDGET_S seconds (default 540); a failing step does not stop the
# next ones. At the end $OUT holds logs.tar.gz, summary.txt and results/<device>/<op>.md:
# a handful of files, at most two folders deep. Exit status: non-zero if any step failed.
#
#   OUT=/path/to/out bash tools/gpu_check.sh        # OUT defaults to ./gpu_out
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-./gpu_out}
mkdir -p "$OUT/results"
OUT=$(cd "$OUT" && pwd)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
PACK_S=20          # kept back for packing the logs
BENCH_MIN_S=180    # kept back for the benchmarks while the earlier steps run
export FUSED_INPAINT_CUDA_ARCHS=${FUSED_INPAINT_CUDA_ARCHS:-90}
export PYTHONUNBUFFERED=1   # a step cut short by its limit still leaves its output
SUMMARY=()
FAILED=()
RESERVE_S=$BENCH_MIN_S

# step NAME LIMIT_S COMMAND...: runs COMMAND with output to $OUT/NAME.log, for at most
# LIMIT_S seconds and never into the time kept back for later steps.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - PACK_S - RESERVE_S - SECONDS))
    ((limit > left)) && limit=$left
    if ((limit <= 0)); then
        SUMMARY+=("$(printf '%-20s %s' "$name" "SKIPPED (time budget spent)")")
        FAILED+=("$name")
        echo "${SUMMARY[-1]}"
        return
    fi
    local start=$SECONDS status
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    case $rc in
        0) status="ok" ;;
        124 | 137) status="TIMEOUT after ${limit}s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    ((rc != 0)) && FAILED+=("$name")
    SUMMARY+=("$(printf '%-20s %-24s %4ds' "$name" "$status" $((SECONDS - start)))")
    echo "${SUMMARY[-1]}"
}

step env 60 bash -c '
    nvidia-smi
    nvcc --version
    compute-sanitizer --version
    python -c "import sys, torch, triton
print(\"python\", sys.version)
print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, torch.cuda.get_device_name())
print(\"triton\", triton.__version__)"
'

step install 240 bash -c '
    set -e
    if compgen -G ".whl/*.whl" >/dev/null; then
        python -m pip install --no-index --no-deps .whl/*.whl
    fi
    python -m pip install --no-index --no-build-isolation --no-deps -e .
    python -c "import sys, fused_inpaint
status = fused_inpaint.available_backends()
for name, s in status.items():
    print(f\"{name}: {s}\")
sys.exit(0 if status[\"cuda\"].available and status[\"triton\"].available else 1)"
'

step tests 180 python -m pytest tests -m gpu -x -q -p no:cacheprovider

# Without the caching allocator memcheck sees every allocation's true bounds. API errors
# are left out of the verdict: torch and triton probe the driver with calls that fail by
# design, and a real one surfaces as a failing test anyway.
step memcheck 150 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
    compute-sanitizer --tool memcheck --error-exitcode 1 --report-api-errors no \
    python -m pytest tests/test_flow_warp.py -m gpu -q -x -p no:cacheprovider

RESERVE_S=0
BENCHES=(benchmarks/bench_*.py)
for i in "${!BENCHES[@]}"; do
    # An equal share of the time left for each benchmark still to run.
    share=$(((BUDGET - PACK_S - SECONDS) / (${#BENCHES[@]} - i)))
    step "$(basename "${BENCHES[i]}" .py)" "$share" python "${BENCHES[i]}" --out "$OUT/results"
done

{
    echo "GPU check: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)," \
        "$(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s"
    printf '%s\n' "${SUMMARY[@]}"
    for name in "${FAILED[@]}"; do
        [[ -f "$OUT/$name.log" ]] || continue
        echo
        echo "--- last lines of $name.log"
        tail -n 25 "$OUT/$name.log"
    done
    echo
    echo "results:"
    (cd "$OUT" && find results -type f | sort)
} >"$OUT/summary.txt"

# Only a few small files, at most two folders deep, come back from the device: the logs
# travel as one archive, the tail of any huge log only.
for log in "$OUT"/*.log; do
    if (($(stat -c %s "$log") > 4000000)); then
        tail -c 4000000 "$log" >"$log.tail" && mv "$log.tail" "$log"
    fi
done
(cd "$OUT" && tar -czf logs.tar.gz ./*.log && rm -f ./*.log)

cat "$OUT/summary.txt"
if ((${#FAILED[@]})); then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all steps passed"
