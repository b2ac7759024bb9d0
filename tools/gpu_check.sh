#!/usr/bin/env bash
# The whole GPU check in one call, cold, on a machine with a CUDA GPU, a CUDA build of torch,
# triton, the CUDA toolkit and no network, in at most GPU_CHECK_BUDGET_S seconds (default
# 470). Steps, each under a time limit, each logged to <step>.log; a failing step does not
# stop the next ones:
#   env        the GPU, driver, toolkit and library versions
#   wheels     the wheels in .whl/ (tools/prepare_gpu_wheels.sh), installed --no-index
#              --no-deps into a folder of their own, first on PYTHONPATH: the machine's
#              packages, torch and triton above all, are left as they are
#   build      fused_inpaint._C with its CUDA kernels, in place, for FUSED_INPAINT_CUDA_ARCHS
#              (default 90 here, to build faster); then the cuda and triton backends must
#              be available
#   tests      pytest -m gpu on xdist workers                             } side by side:
#   memcheck   compute-sanitizer's memcheck, and its racecheck, on the    } no figure is
#   racecheck  kernels' extreme inputs (pytest -m sanitize)               } measured here
#   backtrace  a CUDA kernel called with a bad argument, under cuda-gdb   }
#   bench_*    every benchmark with --quick, the op tables first, each given its share of
#              the time left; it measures nothing more once that is spent
# $OUT then holds summary.txt, results.tar.gz (results/<device>/*.md, to unpack into
# benchmarks/) and logs.tar.gz. Exit status: non-zero if any step failed.
#
#   OUT=/path/to/out bash tools/gpu_check.sh        # OUT defaults to ./gpu_out
#
# Environment: GPU_CHECK_DRY_RUN=1 walks every step on a machine without a GPU, running
# everything but device execution: the wheels are installed, the GPU tests and the
# sanitizers' subset collected, the benchmarks started without a budget, $OUT written; the
# device commands are printed instead. GPU_CHECK_STEPS="wheels tests" runs only the steps
# named (bench: all benchmarks). GPU_CHECK_PYTHON (python3), GPU_CHECK_WHEELS (.whl),
# GPU_CHECK_WORKERS (12 xdist workers).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

OUT=${OUT:-./gpu_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUDGET=${GPU_CHECK_BUDGET_S:-470}
DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
STEPS=${GPU_CHECK_STEPS:-}
PYTHON=${GPU_CHECK_PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
WORKERS=${GPU_CHECK_WORKERS:-12}
PACK_S=15         # kept back for the summary and the archives
BENCH_MIN_S=200   # kept back for the benchmarks while the earlier steps run
BENCH_GRACE_S=15  # a benchmark's limit beyond its budget: its start, the row under way
# Each benchmark's weight in sharing the time left, in the order they run: the op tables,
# then DIS flow (CPU only) and the pipeline, whose CUDA graphs take longest to capture.
# An op table's start (imports, the copy bandwidth, torch.compile's first compile) takes
# about 10 s: the tables that measured no row on the H100 (flow_propagate,
# propagation_gather) get more, fb_validity, whose key rows it measured, less.
BENCHES=(convlstm:2 fb_validity:1 flow_propagate:3 flow_warp:2 propagation_gather:3
    shift_align:2 flow:1 model:4)
# The pipeline at 1920x1080, where the GPU memory target is set (its 432x240 rows were
# measured on the H100), in the modes that use DIS on the fused kernels.
MODEL_ARGS=(--sizes 1920x1080 --only "dis auto")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SITE=$WORK/site
RESERVE_S=$BENCH_MIN_S
export FUSED_INPAINT_CUDA_ARCHS=${FUSED_INPAINT_CUDA_ARCHS:-90}
export PYTHONUNBUFFERED=1 # a step cut short by its limit still leaves its output
# The package from this tree (built in place), then the wheels' folder, then the machine's.
export PYTHONPATH=$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}

dry_run() { [[ $DRY_RUN == 1 ]]; }

# on_device COMMAND...: runs COMMAND, which needs the GPU; a dry run only prints it.
on_device() {
    if dry_run; then
        echo "dry run, not run: $*"
    else
        "$@"
    fi
}

selected() { [[ -z $STEPS || " $STEPS " == *" $1 "* || " $STEPS " == *" ${1%%_*} "* ]]; }

# record NAME STATUS SECONDS FAILED: the step's line of the summary.
record() {
    printf '%-26s %-28s %4ds\n' "$1" "$2" "$3" | tee -a "$WORK/steps"
    if (($4)); then echo "$1" >>"$WORK/failed"; fi
}

# step NAME LIMIT_S COMMAND...: COMMAND's output into $OUT/NAME.log, for at most LIMIT_S
# seconds and never into the time kept back for later steps. COMMAND may be one of the
# exported functions below: it runs in a bash of its own, which the time limit ends with
# everything it started.
step() {
    local name=$1 limit=$2
    shift 2
    selected "$name" || return 0
    local left=$((BUDGET - PACK_S - RESERVE_S - SECONDS))
    ((limit > left)) && limit=$left
    if ((limit <= 0)); then
        record "$name" "SKIPPED (time budget spent)" 0 1
        return
    fi
    local start=$SECONDS status
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    case $rc in
        0) status="ok" ;;
        124 | 137) status="TIMEOUT after ${limit}s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    record "$name" "$status" $((SECONDS - start)) $((rc != 0))
}

# The toolkit torch builds with, and compute-sanitizer from it (it is seldom on PATH).
CUDA_HOME_DIR=$("$PYTHON" -c 'from torch.utils.cpp_extension import CUDA_HOME
print(CUDA_HOME or "")' 2>/dev/null)
SANITIZER=""
for candidate in "$CUDA_HOME_DIR/bin/compute-sanitizer" \
    "$CUDA_HOME_DIR/compute-sanitizer/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer "$(command -v compute-sanitizer)"; do
    if [[ -n $candidate && -x $candidate ]]; then
        SANITIZER=$candidate
        break
    fi
done

# pytest with xdist its only plugin: those the machine has may not suit the wheels' pytest.
run_pytest() {
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$PYTHON" -m pytest -p xdist.plugin -p no:cacheprovider "$@"
}

environment() {
    on_device nvidia-smi
    echo "CUDA_HOME: ${CUDA_HOME_DIR:-not found}"
    echo "compute-sanitizer: ${SANITIZER:-not found}"
    if [[ -n $SANITIZER ]]; then "$SANITIZER" --version; fi
    if command -v nvcc >/dev/null; then nvcc --version; fi
    "$PYTHON" -c 'import sys, torch, triton
print("python", sys.version)
print("torch", torch.__version__, "CUDA", torch.version.cuda)
print("triton", triton.__version__)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
}

install_wheels() {
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "no wheels in $WHEELS: the machine's own packages only"
        return 0
    fi
    "$PYTHON" -m pip install --no-index --no-deps --no-compile --no-cache-dir \
        --target "$SITE" "$WHEELS"/*.whl &&
        "$PYTHON" -c 'import av, PIL, pytest, safetensors, tqdm, xdist
for module in (av, PIL, pytest, safetensors, tqdm, xdist):
    print(module.__name__, getattr(module, "__version__", ""), module.__file__)'
}

build() {
    on_device env MAX_JOBS="$(nproc)" "$PYTHON" setup.py build_ext --inplace &&
        on_device "$PYTHON" -c 'import sys, fused_inpaint
status = fused_inpaint.available_backends()
for name, s in status.items():
    print(f"{name}: {s}")
sys.exit(0 if status["cuda"].available and status["triton"].available else 1)'
}

gpu_tests() {
    if dry_run; then
        run_pytest tests -m gpu --collect-only -q
    else
        # Inductor compiles in each worker's own process: a pool of compile processes per
        # worker would start hundreds of them.
        # -v: each finished test's verdict is in the log, even if the step's limit ends it.
        TORCHINDUCTOR_COMPILE_THREADS=1 run_pytest tests -m gpu -n "$WORKERS" --dist loadgroup \
            -v -rfEs --durations=30
    fi
}

# The kernels the sanitizers check: this project's, that is the CUDA kernels (their mangled
# names hold the namespace) and the Triton ones (named *_kernel). Checking every kernel,
# torch's too, memcheck got through two tests in 160 s on an H100. A compute-sanitizer
# without the regex key checks the CUDA kernels alone.
OUR_KERNELS='fused_inpaint|^[a-z0-9_]+_kernel$'

# sanitize TOOL MARKERS [OPTION...]: the tests selected by MARKERS (a pytest -m expression)
# under compute-sanitizer, the boundary sizes (test_edges.py) first. Without the caching
# allocator it sees every allocation's true bounds.
sanitize() {
    if dry_run; then
        run_pytest tests/test_edges.py tests -m "$2" --collect-only -q || return
    elif [[ -z $SANITIZER ]]; then
        echo "compute-sanitizer not found (CUDA_HOME: ${CUDA_HOME_DIR:-none})"
        return 1
    fi
    local kernels=regex=$OUR_KERNELS
    if ! "$SANITIZER" --help 2>/dev/null | grep -q 'regex'; then kernels=kns=fused_inpaint; fi
    # pytest itself, not run_pytest: compute-sanitizer passes no exported shell function on.
    # -v: each finished test's verdict is in the log, even if the step's limit ends it.
    on_device env PYTORCH_NO_CUDA_MEMORY_CACHING=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 \
        "${SANITIZER:-compute-sanitizer}" --tool "$1" --kernel-name "$kernels" \
        --target-processes all --error-exitcode 1 "${@:3}" \
        "$PYTHON" -m pytest -p xdist.plugin -p no:cacheprovider tests/test_edges.py tests \
        -m "$2" -v --durations=20
}

# A CUDA kernel called directly with a bad argument has crashed the process on the GPU
# machines (where the same build without a GPU raises RuntimeError): that call under
# cuda-gdb, for the backtrace of the crash.
bad_call_backtrace() {
    local call='import torch, fused_inpaint
gates = torch.randn(2, 12, 5, 6, device="cuda")
try:
    torch.ops.fused_inpaint.convlstm_cell(gates[0], None)
except RuntimeError as error:
    print("raised RuntimeError:", str(error).splitlines()[0])'
    local debugger
    debugger=$(command -v cuda-gdb || echo "$CUDA_HOME_DIR/bin/cuda-gdb")
    if dry_run; then
        echo "dry run, not run: $debugger -batch -ex run -ex bt --args $PYTHON -c ..."
    elif [[ -x $debugger ]]; then
        "$debugger" -q -batch -ex run -ex bt --args "$PYTHON" -c "$call"
    else
        echo "cuda-gdb not found"
        "$PYTHON" -c "$call"
    fi
}

export PYTHON DRY_RUN WHEELS SITE WORKERS CUDA_HOME_DIR SANITIZER OUR_KERNELS
export -f dry_run on_device run_pytest environment install_wheels build gpu_tests sanitize \
    bad_call_backtrace

step env 60 environment
step wheels 60 install_wheels
step build 240 build

# The three side by side, each within the tests' 200 s. API errors are left out: torch and
# triton probe the driver with calls that fail by design. memcheck also takes the
# adversarial suite's sides of 2^24 to 2^25 pixels; racecheck, which looks at shared memory
# only, leaves them out.
step tests 200 gpu_tests &
step memcheck 200 sanitize memcheck sanitize --report-api-errors no &
step racecheck 200 sanitize racecheck "sanitize and not adversarial" &
step backtrace 90 bad_call_backtrace &
wait

RESERVE_S=0
weight_left=0
for bench in "${BENCHES[@]}"; do weight_left=$((weight_left + ${bench#*:})); done
for bench in "${BENCHES[@]}"; do
    name=${bench%:*} weight=${bench#*:}
    limit=$(((BUDGET - PACK_S - SECONDS) * weight / weight_left))
    weight_left=$((weight_left - weight))
    budget=$((limit - BENCH_GRACE_S))
    if dry_run; then budget=0; fi
    # One compile thread: a pool of compile processes took seconds to start and to stop,
    # which left an op table written but its process past the limit.
    extra=()
    if [[ $name == model ]]; then extra=("${MODEL_ARGS[@]}"); fi
    step "bench_$name" "$limit" env TORCHINDUCTOR_COMPILE_THREADS=1 \
        "$PYTHON" "benchmarks/bench_$name.py" --quick "${extra[@]}" \
        --budget-s "$((budget > 0 ? budget : 0))" --out "$OUT/results"
done

{
    if dry_run; then
        echo "GPU check, dry run on $(uname -n): device execution left out"
    else
        echo "GPU check on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    fi
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), ${SECONDS}s of ${BUDGET}s"
    cat "$WORK/steps"
    echo
    for name in tests memcheck racecheck; do
        [[ -f $OUT/$name.log ]] || continue
        # pytest's last line ("... in 12.3s"), and the sanitizer's verdict
        echo "$name: $(grep -E ' in [0-9.]+s|ERROR SUMMARY' "$OUT/$name.log" | tail -n 2 |
            paste -sd ';')"
    done
    if [[ -f $OUT/backtrace.log ]]; then # the call's verdict, or the crash's innermost frames
        echo "backtrace:"
        grep -E '^#[0-9]+ |raised RuntimeError|signal|not found' "$OUT/backtrace.log" | head -n 16
    fi
    echo
    echo "results (results.tar.gz unpacks into benchmarks/):"
    for table in "$OUT"/results/*/*.md; do
        [[ -f $table ]] || continue
        rows=$(($(grep -c '^| ' "$table") - $(grep -c '^|-' "$table"))) # less the headers
        unmeasured=$(grep -c 'not measured: time budget' "$table")
        echo "  ${table#"$OUT"/}: $rows rows, $unmeasured not measured"
    done
    while read -r name; do
        [[ -f $OUT/$name.log ]] || continue
        echo
        echo "--- last lines of $name.log"
        tail -n 25 "$OUT/$name.log"
    done < <(cat "$WORK/failed" 2>/dev/null)
} >"$OUT/summary.txt"

# Only a few files, at most two folders deep, come back from the device: the logs travel
# as one archive (the tail of a huge one only), the tables as another.
for log in "$OUT"/*.log; do
    if (($(stat -c %s "$log") > 4000000)); then
        tail -c 4000000 "$log" >"$log.tail" && mv "$log.tail" "$log"
    fi
done
(cd "$OUT" && tar -czf logs.tar.gz ./*.log && rm -f ./*.log)
if [[ -d $OUT/results ]]; then
    (cd "$OUT" && tar -czf results.tar.gz results && rm -rf results)
fi

cat "$OUT/summary.txt"
if [[ -s $WORK/failed ]]; then
    echo "FAILED: $(tr '\n' ' ' <"$WORK/failed")"
    exit 1
fi
echo "all steps passed"
