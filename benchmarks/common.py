"""Helpers shared by the benchmarks: environment, GPU timing, bandwidth, implementations,
the measure-and-write loop, result tables and the command line.

GPU figures follow SPEC 7: CUDA-event times from ``triton.testing.do_bench`` (median,
after warm-up), random inputs rotated among copies larger than L2, achieved GB/s (each
input read once, each output written once) and that as a fraction of the device-to-device
copy bandwidth measured in the same run. CPU figures go through pytest-benchmark; the
helpers for those are at the end.

A run may be quick (fewer repetitions per figure) and have a time budget, after which it
measures nothing more; each table is rewritten after every row, so a run cut short keeps
what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

import fused_inpaint

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Several times the L2 of current GPUs (H100: 50 MB, H200: 60 MB), so rotated inputs come
# from DRAM; the cap keeps tiny shapes from allocating thousands of copies.
ROTATION_BYTES = 256 * 2**20
MAX_INPUT_SETS = 16
COPY_BYTES = 512 * 2**20
PASSES = ("forward", "forward+backward")
# do_bench's warm-up and timing, in ms of runs of the timed function: full and --quick.
TIMING = {"warmup": 25, "rep": 100}
QUICK_TIMING = {"warmup": 10, "rep": 25}
NOT_MEASURED = "not measured: time budget spent"

T = TypeVar("T")
# An implementation: a callable, or the reason it cannot run here.
Implementation = Callable | str

# This run's settings (configure): do_bench's timing, and the time.monotonic() after which
# nothing more is measured.
_timing = TIMING
_deadline: float | None = None


def configure(quick: bool, budget_s: float | None) -> None:
    """Fewer repetitions per figure when ``quick``; nothing measured after ``budget_s``
    seconds from now (None: no limit)."""
    global _timing, _deadline
    _timing = QUICK_TIMING if quick else TIMING
    _deadline = None if budget_s is None else time.monotonic() + budget_s


def budget_spent() -> bool:
    return _deadline is not None and time.monotonic() >= _deadline


def add_run_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """--quick, --budget-s and --out, the options of every benchmark script."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="measure nothing more after this many seconds; the rest is noted as not measured",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="results root (default %(default)s)"
    )


@dataclass(frozen=True)
class Environment:
    """The GPU and software a table was measured with."""

    device: str
    capability: str
    torch: str
    triton: str
    cuda: str
    date: str

    @property
    def slug(self) -> str:
        """Filesystem-safe device name, e.g. "nvidia-h200": the folder under results/."""
        return re.sub(r"[^a-z0-9]+", "-", self.device.lower()).strip("-")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if names:
            return names[0].strip()
    return platform.processor() or platform.machine()


def environment() -> Environment:
    """Describes the current CUDA device (else the CPU), torch, triton and CUDA versions,
    and the UTC date."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        device, capability = torch.cuda.get_device_name(), f"sm_{major}{minor}"
    else:
        device, capability = f"CPU {cpu_name()}", f"{os.cpu_count()} cores"
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    return Environment(
        device=device,
        capability=capability,
        torch=torch.__version__,
        triton=triton_version,
        cuda=str(torch.version.cuda),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def nbytes(*objects) -> int:
    """Total size in bytes of the distinct tensors in ``objects`` (nested tuples, lists, dicts)."""
    tensors: dict[int, torch.Tensor] = {}

    def collect(obj) -> None:
        if isinstance(obj, torch.Tensor):
            tensors[id(obj)] = obj
        elif isinstance(obj, dict):
            collect(list(obj.values()))
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                collect(item)

    collect(objects)
    return sum(t.numel() * t.element_size() for t in tensors.values())


def gbps(num_bytes: int, ms: float) -> float:
    """Bandwidth in GB/s (1e9 bytes per second) of moving ``num_bytes`` in ``ms`` milliseconds."""
    return num_bytes / ms / 1e6


def input_sets(make: Callable[[], T], min_bytes: int = ROTATION_BYTES) -> list[T]:
    """Calls ``make()`` k times, k * size >= ``min_bytes`` (at most MAX_INPUT_SETS), to rotate."""
    first = make()
    k = min(MAX_INPUT_SETS, max(1, math.ceil(min_bytes / max(nbytes(first), 1))))
    return [first] + [make() for _ in range(k - 1)]


def time_gpu(fn: Callable, arg_sets: Sequence[tuple]) -> float:
    """Median CUDA time in ms of ``fn(*args)``, ``args`` cycling through ``arg_sets``.

    do_bench runs ``fn`` once (compilation, autotuning), warms up (TIMING), then times each
    run between CUDA events, flushing L2 before each one.
    """
    from triton.testing import do_bench

    rotation = itertools.cycle(arg_sets)
    return do_bench(lambda: fn(*next(rotation)), return_mode="median", **_timing)


def measure_copy_bandwidth(size: int = COPY_BYTES) -> float:
    """Device-to-device copy bandwidth in GB/s: ``dst.copy_(src)`` reads and writes ``size``."""
    src = torch.rand(size // 4, device="cuda")
    dst = torch.empty_like(src)
    return gbps(2 * size, time_gpu(dst.copy_, [(src,)]))


def environment_and_copy_bandwidth() -> tuple[Environment, float]:
    """The Environment and the copy bandwidth in GB/s, both printed."""
    env = environment()
    copy_gbps = measure_copy_bandwidth()
    print(f"{env.device}: device-to-device copy {copy_gbps:.0f} GB/s", flush=True)
    return env, copy_gbps


def on_backend(backend: str, make: Callable[[str], Callable]) -> Implementation:
    """``make(backend)``, or the reason ``backend`` cannot run here."""
    status = fused_inpaint.available_backends()[backend]
    return make(backend) if status.available else status.detail


def gpu_implementations(
    composite: Callable, fused: Callable[[str], Callable]
) -> dict[str, Implementation]:
    """eager ``composite``, torch.compile of it (static shapes), and ``fused(backend)`` on
    triton and cuda: name -> fn, or the reason it cannot run here."""
    impls = {"eager": composite, "torch.compile": torch.compile(composite, dynamic=False)}
    for backend in ("triton", "cuda"):
        impls[backend] = on_backend(backend, fused)
    return impls


def check_against_eager(impls: dict[str, Implementation], args: tuple, **tolerance) -> dict:
    """name -> note: each runnable implementation's output on ``args`` against eager's."""
    expected = impls["eager"](*args)
    return {
        name: mismatch(expected, fn, args, "eager in float32", **tolerance)
        for name, fn in impls.items()
        if name != "eager" and not isinstance(fn, str)
    }


def forward_backward(fn: Callable, n_outputs: int = 1) -> Callable:
    """``fn(*inputs) -> output(s)`` as ``run(*inputs, *grad_outputs) -> grads w.r.t. inputs``.

    Uses ``torch.autograd.grad``, so repeated runs accumulate nothing in ``.grad``.
    """

    def run(*args):
        inputs, grad_outputs = args[:-n_outputs], args[-n_outputs:]
        outputs = fn(*inputs)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return torch.autograd.grad(outputs, inputs, grad_outputs)

    return run


def failure(error: BaseException) -> str:
    """One short line for a table cell: "failed: ErrorType: first line of the message"."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    text = f"failed: {type(error).__name__}: {first_line}"
    return text if len(text) <= 140 else text[:137] + "..."


def _as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def mismatch(expected, fn: Callable, args: tuple, reference: str, atol: float, rtol: float) -> str:
    """Empty if ``fn(*args)`` is allclose to ``expected`` (in float32), else a table note."""
    try:
        pairs = zip(_as_tuple(fn(*args)), _as_tuple(expected), strict=True)
        errors = [
            (a.float() - e.float()).abs().nan_to_num(float("inf")).max().item()
            for a, e in pairs
            if not torch.allclose(a.float(), e.float(), atol=atol, rtol=rtol)
        ]
    except Exception as error:  # reported in the table, like a failed timing
        return "check " + failure(error)
    return f"differs from {reference} (max abs err {max(errors):.2e})" if errors else ""


@dataclass
class Row:
    """One measured (or unmeasured) case: ``ms`` is None when it did not run; ``note`` says why."""

    shape: str
    dtype: str
    pass_: str
    impl: str
    ms: float | None = None
    num_bytes: int = 0
    note: str = ""


def measure(
    shape: str,
    dtype: str,
    pass_: str,
    impl: str,
    fn: Implementation,
    arg_sets,
    num_bytes: int,
    check: str = "",
) -> Row:
    """Times ``fn`` over ``arg_sets`` into a Row; an unavailable or failing ``fn``, or one
    past the time budget, gets a note, after ``check`` (what a correctness check found)."""
    row = Row(shape, dtype, pass_, impl, num_bytes=num_bytes)
    if isinstance(fn, str):
        row.note = f"unavailable: {fn}"
    elif budget_spent():
        row.note = NOT_MEASURED
    else:
        try:
            row.ms = time_gpu(fn, arg_sets)
        except Exception as error:  # a failing implementation is a row of the table, not a crash
            row.note = failure(error)
            torch.cuda.empty_cache()
    row.note = "; ".join(filter(None, (check, row.note)))
    return row


def print_row(row: Row, prefix: str = "") -> None:
    """One line of progress: the case and its time, or its note."""
    result = f"{row.ms * 1e3:.1f} us" if row.ms is not None else row.note
    print(f"{prefix}{row.shape} {row.dtype} {row.pass_} {row.impl}: {result}", flush=True)


def bench_passes(
    label: str,
    dtype: str,
    impls: dict[str, Implementation],
    arg_sets: Callable[[str, str], list[tuple]],
    traffic: Callable[[tuple, str], int],
    backward: Callable[[Callable], Callable] = forward_backward,
    checks: dict[str, str] | None = None,
    prefix: str = "",
) -> Iterator[Row]:
    """Rows of every implementation, forward then forward+backward, on one case; each
    printed and yielded as it is measured, after ``prefix``.

    ``arg_sets(name, pass_)``: the rotated argument tuples; ``traffic(args, pass_)``: bytes
    moved by one call; ``backward(fn)``: fn as forward+backward; ``checks``: name -> note.
    """
    checks = checks or {}
    for pass_ in PASSES:
        for name, fn in impls.items():
            args = arg_sets(name, pass_)
            if pass_ != "forward" and not isinstance(fn, str):
                fn = backward(fn)
            num_bytes = traffic(args[0], pass_)
            check = checks.get(name, "")
            row = measure(label, dtype, pass_, name, fn, args, num_bytes, check)
            print_row(row, prefix)
            yield row


def table_line(cells: Iterable[str]) -> str:
    """One markdown table line, each cell's pipes escaped and line breaks flattened."""
    escaped = (cell.replace("|", "\\|").replace("\n", " ") for cell in cells)
    return "| " + " | ".join(escaped) + " |"


def markdown_table(rows: Sequence[Row], copy_gbps: float, baseline: str = "eager") -> str:
    """The rows as a markdown table; speed-up is against ``baseline`` in the same case."""
    base = {(r.shape, r.dtype, r.pass_): r.ms for r in rows if r.impl == baseline}
    lines = [
        f"| shape | dtype | pass | implementation | time (us) | GB/s | % of copy BW "
        f"| vs {baseline} | note |",
        "|---|---|---|---|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        figures = ["—"] * 4
        if r.ms is not None:
            rate = gbps(r.num_bytes, r.ms)
            ref = base.get((r.shape, r.dtype, r.pass_))
            figures = [
                f"{r.ms * 1e3:.1f}",
                f"{rate:.0f}",
                f"{100 * rate / copy_gbps:.1f}%",
                f"{ref / r.ms:.2f}x" if ref is not None else "—",
            ]
        cells = [r.shape, r.dtype, r.pass_, r.impl, *figures, r.note]
        lines.append(table_line(cells))
    return "\n".join(lines)


def header(title: str, env: Environment, facts: Sequence[str], notes: Sequence[str]) -> str:
    """A report's markdown header: "<title> on <device>", versions, date, ``facts``, the
    command, ``notes``."""
    lines = [
        f"# {title} on {env.device}",
        "",
        f"- device: {env.device} ({env.capability}); torch {env.torch}, triton {env.triton}, "
        f"CUDA {env.cuda}",
        f"- date: {env.date}",
        *(f"- {fact}" for fact in facts),
        f"- command: `{' '.join(['python', *sys.argv])}`",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(lines)


def section(title: str, notes: Sequence[str], table: str) -> str:
    """A second table in a report: "## title", its notes, the table."""
    notes_text = "\n".join(f"- {note}" for note in notes)
    return f"\n## {title}\n\n{notes_text}\n\n{table}\n"


def report(op: str, env: Environment, copy_gbps: float, notes: Sequence[str], rows) -> str:
    """The whole markdown document: header (device, versions, date, method, notes), table."""
    facts = [
        f"device-to-device copy bandwidth, measured in this run: {copy_gbps:.0f} GB/s "
        f"(`dst.copy_(src)` of {COPY_BYTES // 2**20} MiB, counted as read + write)",
        "method: `triton.testing.do_bench` median of CUDA-event times, after warm-up, L2 "
        f"flushed before each run; random inputs rotated among copies totalling >= "
        f"{ROTATION_BYTES // 2**20} MiB (at most {MAX_INPUT_SETS}); GB/s = bytes / time with "
        "each input read once and each output written once; — = not measured",
    ]
    return header(op, env, facts, notes) + "\n\n" + markdown_table(rows, copy_gbps) + "\n"


def write_report(out_dir: Path, op: str, env: Environment, text: str) -> Path:
    """Writes ``text`` to ``out_dir/<device slug>/<op>.md`` and returns that path."""
    path = Path(out_dir) / env.slug / f"{op}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def measure_and_write(
    name: str,
    env: Environment,
    out_dir: Path,
    cases: Iterable[T],
    measure_case: Callable[[T], Iterable | None],
    render: Callable[[], str],
) -> None:
    """Runs ``measure_case`` on every case, each with a fresh compile cache, until the time
    budget is spent, and writes ``render()`` to ``out_dir/<device>/<name>.md`` after each
    case and after each step its result yields (a measured row); prints the last report."""

    def write() -> Path:
        return write_report(out_dir, name, env, render())

    for case in cases:
        if budget_spent():
            print(f"{name}: time budget spent, the remaining cases are not measured", flush=True)
            break
        # A fresh compile cache per case keeps torch.compile under dynamo's recompile limit.
        torch.compiler.reset()
        for _ in measure_case(case) or ():
            write()  # so that a run cut short keeps every row it measured
        write()
    path = write()
    print()
    print(render())
    print(f"wrote {path}")


def measure_table(
    op: str,
    notes: Sequence[str],
    cases: Iterable[T],
    out_dir: Path,
    measure_case: Callable[[T], Iterable[Row]],
) -> None:
    """The single-table benchmark of ``op``: the rows of every case, written as they come
    to ``out_dir/<device>/<op>.md``."""
    env, copy_gbps = environment_and_copy_bandwidth()
    rows: list[Row] = []

    def measure(case: T) -> Iterator[None]:
        for row in measure_case(case):
            rows.append(row)
            yield

    def render() -> str:
        return report(op, env, copy_gbps, notes, rows)

    measure_and_write(op, env, out_dir, cases, measure, render)


def gpu_main(
    argv: list[str] | None,
    name: str,
    description: str,
    cases: Sequence[T],
    run_gpu: Callable[[Sequence[T], Path], object],
) -> int:
    """The command line of a GPU benchmark: ``run_gpu(cases, out_dir)``; with ``--quick``
    the first case (the key shape) alone, with fewer repetitions. Without a CUDA device it
    says where the CPU timings are."""
    parser = argparse.ArgumentParser(description=description)
    add_run_arguments(parser, "the key shape alone, with fewer repetitions")
    args = parser.parse_args(argv)
    configure(args.quick, args.budget_s)
    if not torch.cuda.is_available():
        print(
            f"{name}: the GPU benchmark needs a CUDA device; for CPU timings run "
            "`python -m pytest benchmarks --benchmark-only`"
        )
        return 0
    run_gpu(cases[:1] if args.quick else cases, args.out)
    return 0


def cpu_implementations(
    fused: Callable[[str], Callable], eager: Callable | None = None
) -> dict[str, Implementation]:
    """``fused`` on the cpu and torch backends, and the ``eager`` composite if given."""
    impls = {"cpu": on_backend("cpu", fused), "torch": fused("torch")}
    if eager is not None:
        impls["eager"] = eager
    return impls


def parametrize_implementations(metafunc, argname: str, impls: dict[str, Implementation]):
    """For ``pytest_generate_tests``: one case per implementation, unavailable ones skipped.

    pytest is imported here, not at module level, so a bench_*.py file stays runnable as a
    GPU script where pytest is not installed.
    """
    import pytest

    if argname not in metafunc.fixturenames:
        return
    params = []
    for name, fn in impls.items():
        marks = [pytest.mark.skip(reason=f"unavailable: {fn}")] if isinstance(fn, str) else []
        params.append(pytest.param(fn, id=name, marks=marks))
    metafunc.parametrize(argname, params)
