"""Model benchmark: frames/s and peak GPU memory of the streaming Inpainter, with and
without CUDA graphs.

GPU:  python benchmarks/bench_model.py [--quick] [--out DIR]   (or: fused-inpaint bench)
      streams frames one by one (batch 1) through ``fused_inpaint.Inpainter`` in float16
      at 432x240, 854x480, 1280x720 and 1920x1080, with the fused ops (backend "auto") and
      with the pure-PyTorch reference ops (backend "torch"), each uncompiled and with
      ``compile=True`` (torch.compile replayed as CUDA graphs); prints the table and
      writes DIR/<device>/model.md (DIR: benchmarks/results by default).
CPU:  python -m pytest benchmarks --benchmark-only
      a few tiny frames through the Inpainter on the cpu and torch backends.
"""

from __future__ import annotations

import itertools
import sys
import time
import warnings
from pathlib import Path

import common
import numpy as np
import torch

import fused_inpaint
from fused_inpaint.models import DEFAULT_WEIGHTS
from fused_inpaint.pipeline import Inpainter

NAME = "model"
RESOLUTIONS = [(240, 432), (480, 854), (720, 1280), (1080, 1920)]  # (H, W)
BACKENDS = ("auto", "torch")
DTYPE = torch.float16
WARMUP_FRAMES = 10  # a compiled Inpainter compiles all its graphs in these
CHECKPOINTS = (30, 120)  # output frames after which time and peak memory are read
POOL = 8  # distinct random frames and masks, cycled through the stream
AGREEMENT_FRAMES = 8
CPU_SIZE, CPU_FRAMES = (64, 96), 4

NOTES = [
    "streaming, batch 1: `Inpainter(dtype=float16).stream(frames, masks)` yields each "
    "inpainted frame as a uint8 numpy array; the time covers the whole step (upload, "
    "encoder, flows, alignment, memory, decoder, compositing, download), wall clock",
    "frames: random uint8 RGB, with per-frame masks (a random rectangle of 1/9 of the "
    f"frame), {POOL} of each cycled; {WARMUP_FRAMES} warm-up frames first",
    f"frames/s: steady state, between output frames {CHECKPOINTS[0]} and {CHECKPOINTS[1]} "
    f"of one stream; peak memory: `torch.cuda.max_memory_allocated()` since the stream "
    f"began, read after output frame {CHECKPOINTS[0]} and after {CHECKPOINTS[1]}: equal "
    "figures mean memory does not grow with video length; peak reserved: "
    "`torch.cuda.max_memory_reserved()` after the last, the caching allocator's whole "
    "holding, the CUDA graphs' private memory pool included (its blocks count as "
    "allocated only while a replay's tensors are alive); the allocator's cache is emptied "
    "between the warm-up and the stream",
    "auto: the fused ops on the fastest available backend for CUDA tensors; torch: every "
    "op as the pure-PyTorch reference composite. Convolutions are cuDNN in both",
    "CUDA graphs: `Inpainter(compile=True)` runs the encoder, the flow head and the step "
    '(alignment, memory, decoder) through `torch.compile(mode="reduce-overhead", '
    "dynamic=False, fullgraph=True)`: inductor kernels replayed as CUDA graph trees, one "
    "graph each for the encoder, the pair flows, the first step (no memory yet) and every "
    "later step. The upload, the window bookkeeping, the copies of each call's results out "
    "of the graphs' memory pool (the next replay reuses it) and the download stay eager. "
    "Without CUDA graphs the same network runs uncompiled; vs eager: frames/s against "
    "that row",
    f"warm-up (s): wall time of the {WARMUP_FRAMES} warm-up frames, not part of frames/s; "
    "with CUDA graphs it is mostly compile time (torch.compile of the four graphs, then "
    "their recording), paid again for every new frame size and backend",
    f"note: each row's output on a fixed {AGREEMENT_FRAMES}-frame clip against the "
    "uncompiled auto row's, in uint8 levels",
    "every row without CUDA graphs is measured before any row with them, so a run cut "
    "short keeps the figures that need no compilation",
]


def synthetic_clip(height: int, width: int, count: int, seed: int = 0):
    """``count`` frames (H, W, 3) uint8 and masks (H, W) bool, cycled from a small pool."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(POOL)]
    masks = []
    for _ in range(POOL):
        mask = np.zeros((height, width), dtype=bool)
        top, left = rng.integers(0, height - height // 3), rng.integers(0, width - width // 3)
        mask[top : top + height // 3, left : left + width // 3] = True
        masks.append(mask)
    return (
        itertools.islice(itertools.cycle(frames), count),
        itertools.islice(itertools.cycle(masks), count),
    )


def make_inpainter(device: str, dtype: torch.dtype, compile: bool = False) -> Inpainter:
    """An Inpainter with the shipped weights, or else the same random ones every time."""
    torch.manual_seed(0)
    with warnings.catch_warnings():  # untrained weights time the same as trained ones
        warnings.simplefilter("ignore")
        return Inpainter(device=device, dtype=dtype, compile=compile)


def measure_stream(inpainter: Inpainter, height: int, width: int) -> dict:
    """Warms up, then streams CHECKPOINTS[-1] frames: the warm-up time, frames/s and peak
    MiB allocated at each checkpoint, peak MiB reserved at the last."""
    start = time.perf_counter()
    for _ in inpainter.stream(*synthetic_clip(height, width, WARMUP_FRAMES)):
        pass
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    marks = {}
    outputs = inpainter.stream(*synthetic_clip(height, width, CHECKPOINTS[-1], seed=1))
    for index, _ in enumerate(outputs, start=1):
        if index in CHECKPOINTS:  # the output is on the host: its step has finished
            marks[index] = (time.perf_counter(), torch.cuda.max_memory_allocated() / 2**20)
    (t0, _), (t1, _) = marks[CHECKPOINTS[0]], marks[CHECKPOINTS[-1]]
    return {
        "warmup_s": warmup_s,
        "fps": (CHECKPOINTS[-1] - CHECKPOINTS[0]) / (t1 - t0),
        "peak_mib": [marks[c][1] for c in CHECKPOINTS],
        "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }


def agreement_clip(inpainter: Inpainter, height: int, width: int) -> np.ndarray:
    """The inpainted fixed clip (AGREEMENT_FRAMES, H, W, 3), as int16 to subtract."""
    clip = synthetic_clip(height, width, AGREEMENT_FRAMES, seed=2)
    return np.stack(list(inpainter.stream(*clip))).astype(np.int16)


def agreement(output: np.ndarray, reference: np.ndarray) -> str:
    difference = np.abs(output - reference)
    return f"vs uncompiled auto: max |diff| {difference.max()}, mean {difference.mean():.3f}"


def label(row: dict) -> str:
    height, width = row["size"]
    return f"{width}x{height} {row['backend']}" + (" + CUDA graphs" if row["graphs"] else "")


def measure_case(inpainters: dict, case: tuple) -> dict:
    """One row: ``case`` = (with CUDA graphs, (H, W), backend), on ``inpainters[graphs]``."""
    graphs, (height, width), backend = case
    row = {"size": (height, width), "backend": backend, "graphs": graphs, "note": ""}
    try:
        with fused_inpaint.use_backend(backend):
            row.update(measure_stream(inpainters[graphs], height, width))
            output = agreement_clip(inpainters[graphs], height, width)
        if graphs or backend != "auto":
            with fused_inpaint.use_backend("auto"):
                reference = agreement_clip(inpainters[False], height, width)
            row["note"] = agreement(output, reference)
        peaks = ", ".join(f"{mib:.0f}" for mib in row["peak_mib"])
        print(f"{label(row)}: {row['fps']:.1f} frames/s, peak MiB {peaks}", flush=True)
    except Exception as error:  # a failing case is a row of the table, not a crash
        row["note"] = common.failure(error)
        torch.cuda.empty_cache()
        print(f"{label(row)}: {row['note']}", flush=True)
    return row


def figures(row: dict, eager_fps: float | None) -> list[str]:
    """The row's measured cells, or dashes where it did not run."""
    if "fps" not in row:
        return ["—"] * (5 + len(CHECKPOINTS))
    speedup = f"{row['fps'] / eager_fps:.2f}x" if eager_fps else "—"
    return [
        f"{row['fps']:.1f}",
        f"{1e3 / row['fps']:.2f}",
        speedup,
        *(f"{mib:.0f}" for mib in row["peak_mib"]),
        f"{row['reserved_mib']:.0f}",
        f"{row['warmup_s']:.1f}",
    ]


def markdown_table(rows: list[dict]) -> str:
    """One line per case, by resolution, then without and with CUDA graphs, then backend."""
    peaks = " | ".join(f"peak MiB after {c} frames" for c in CHECKPOINTS)
    lines = [
        f"| resolution | backend | CUDA graphs | frames/s | ms/frame | vs eager | {peaks} "
        "| peak MiB reserved | warm-up (s) | note |",
        "|---|---|---|--:|--:|--:|" + "--:|" * len(CHECKPOINTS) + "--:|--:|---|",
    ]
    eager = {(r["size"], r["backend"]): r.get("fps") for r in rows if not r["graphs"]}
    order = {backend: i for i, backend in enumerate(BACKENDS)}
    for row in sorted(rows, key=lambda r: (r["size"], r["graphs"], order[r["backend"]])):
        height, width = row["size"]
        cells = [f"{width}x{height}", row["backend"], "yes" if row["graphs"] else "no"]
        cells += figures(row, eager.get((row["size"], row["backend"])))
        cells.append(row["note"])
        lines.append(common.table_line(cells))
    return "\n".join(lines)


def report(env: common.Environment, window: tuple, rows: list[dict]) -> str:
    weights = "shipped" if DEFAULT_WEIGHTS.exists() else "randomly initialised (none shipped)"
    backends = "; ".join(f"{k}: {v}" for k, v in fused_inpaint.available_backends().items())
    facts = [
        f"network: `SlimInpaintNet`, window (past, future) = {window}, float16; weights {weights}",
        f"backends: {backends}",
    ]
    return common.header(NAME, env, facts, NOTES) + "\n\n" + markdown_table(rows) + "\n"


def run_gpu(resolutions: list[tuple[int, int]], out_dir: Path) -> None:
    env = common.environment()
    print(env.device, flush=True)
    inpainters = {graphs: make_inpainter("cuda", DTYPE, graphs) for graphs in (False, True)}
    rows: list[dict] = []

    def measure(case: tuple) -> None:
        rows.append(measure_case(inpainters, case))

    def render() -> str:
        return report(env, inpainters[False].window, rows)

    cases = itertools.product((False, True), resolutions, BACKENDS)
    common.measure_and_write(NAME, env, out_dir, cases, measure, render)


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, NAME, "model GPU benchmark", RESOLUTIONS, run_gpu)


# CPU figures (pytest-benchmark): a few tiny frames, cpu backend vs torch reference backend.


def on_backend(name: str):
    """``inpaint_clip(inpainter, frames, masks)`` with every op on backend ``name``."""

    def inpaint_clip(inpainter: Inpainter, frames: list, masks: list) -> np.ndarray:
        with fused_inpaint.use_backend(name):
            return inpainter(frames, masks)

    return inpaint_clip


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(on_backend)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)


def test_cpu_stream(benchmark, cpu_impl):
    inpainter = make_inpainter("cpu", torch.float32)
    height, width = CPU_SIZE
    frames, masks = map(list, synthetic_clip(height, width, CPU_FRAMES))
    benchmark.group = f"{NAME} stream {width}x{height}, {CPU_FRAMES} frames, float32"
    benchmark.extra_info["frames"] = CPU_FRAMES
    benchmark(cpu_impl, inpainter, frames, masks)


if __name__ == "__main__":
    sys.exit(main())
