"""Model benchmark: frames/s and peak GPU memory of the streaming Inpainter.

GPU:  python benchmarks/bench_model.py [--quick] [--out DIR]   (or: fused-inpaint bench)
      streams frames one by one (batch 1) through ``fused_inpaint.Inpainter`` in float16
      at 432x240, 854x480, 1280x720 and 1920x1080, with the fused ops (backend "auto") and
      with the pure-PyTorch reference ops (backend "torch"); prints the table and writes
      DIR/<device>/model.md (DIR: benchmarks/results by default).
CPU:  python -m pytest benchmarks --benchmark-only
      a few tiny frames through the Inpainter on the cpu and torch backends.
"""

from __future__ import annotations

import argparse
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
WARMUP_FRAMES = 10
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
    "figures mean memory does not grow with video length",
    "auto: the fused ops on the fastest available backend for CUDA tensors; torch: every "
    "op as the pure-PyTorch reference composite. Convolutions are cuDNN in both",
    "CUDA graphs: not measured. The streaming step is not capturable as the pipeline is "
    "built: each frame is copied host to device and its result back to the host inside "
    "the step, the window is a Python deque of per-frame tensors that rotate (no static "
    "addresses), and the first step takes a different branch (no previous output)",
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


def make_inpainter(device: str, dtype: torch.dtype) -> Inpainter:
    with warnings.catch_warnings():  # untrained weights time the same as trained ones
        warnings.simplefilter("ignore")
        return Inpainter(device=device, dtype=dtype)


def measure_stream(inpainter: Inpainter, height: int, width: int) -> dict:
    """Streams CHECKPOINTS[-1] frames; returns frames/s and peak MiB at each checkpoint."""
    for _ in inpainter.stream(*synthetic_clip(height, width, WARMUP_FRAMES)):
        pass
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    marks = {}
    outputs = inpainter.stream(*synthetic_clip(height, width, CHECKPOINTS[-1], seed=1))
    for index, _ in enumerate(outputs, start=1):
        if index in CHECKPOINTS:  # the output is on the host: its step has finished
            marks[index] = (time.perf_counter(), torch.cuda.max_memory_allocated() / 2**20)
    (t0, _), (t1, _) = marks[CHECKPOINTS[0]], marks[CHECKPOINTS[-1]]
    return {
        "fps": (CHECKPOINTS[-1] - CHECKPOINTS[0]) / (t1 - t0),
        "peak_mib": [marks[c][1] for c in CHECKPOINTS],
    }


def agreement(inpainter: Inpainter, height: int, width: int) -> str:
    """Max difference in uint8 levels between the auto and torch backends' outputs."""
    outputs = {}
    for backend in BACKENDS:
        with fused_inpaint.use_backend(backend):
            clip = synthetic_clip(height, width, AGREEMENT_FRAMES, seed=2)
            outputs[backend] = np.stack(list(inpainter.stream(*clip))).astype(np.int16)
    difference = np.abs(outputs["auto"] - outputs["torch"])
    return (
        f"auto vs torch over {AGREEMENT_FRAMES} frames: max |diff| {difference.max()} "
        f"levels, mean {difference.mean():.3f}"
    )


def markdown_table(rows: list[dict]) -> str:
    peaks = " | ".join(f"peak MiB after {c} frames" for c in CHECKPOINTS)
    lines = [
        f"| resolution | backend | frames/s | ms/frame | {peaks} | note |",
        "|---|---|--:|--:|" + "--:|" * len(CHECKPOINTS) + "---|",
    ]
    for row in rows:
        if "fps" in row:
            figures = [f"{row['fps']:.1f}", f"{1e3 / row['fps']:.2f}"]
            figures += [f"{mib:.0f}" for mib in row["peak_mib"]]
        else:
            figures = ["—"] * (2 + len(CHECKPOINTS))
        cells = [row["resolution"], row["backend"], *figures, row.get("note", "")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def report(env: common.Environment, window: tuple, rows: list[dict], notes: list[str]) -> str:
    weights = "shipped" if DEFAULT_WEIGHTS.exists() else "randomly initialised (none shipped)"
    backends = "; ".join(f"{k}: {v}" for k, v in fused_inpaint.available_backends().items())
    header = [
        f"# {NAME} on {env.device}",
        "",
        f"- device: {env.device} ({env.capability}); torch {env.torch}, triton {env.triton}, "
        f"CUDA {env.cuda}",
        f"- date: {env.date}",
        f"- network: `SlimInpaintNet`, window (past, future) = {window}, float16; "
        f"weights {weights}",
        f"- backends: {backends}",
        f"- command: `{' '.join(['python', *sys.argv])}`",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(header) + "\n\n" + markdown_table(rows) + "\n"


def run_gpu(resolutions: list[tuple[int, int]], out_dir: Path) -> None:
    env = common.environment()
    print(env.device, flush=True)
    inpainter = make_inpainter("cuda", DTYPE)
    rows: list[dict] = []
    notes = list(NOTES)
    for height, width in resolutions:
        label = f"{width}x{height}"
        for backend in BACKENDS:
            row = {"resolution": label, "backend": backend}
            try:
                with fused_inpaint.use_backend(backend):
                    row.update(measure_stream(inpainter, height, width))
                peaks = ", ".join(f"{mib:.0f}" for mib in row["peak_mib"])
                print(f"{label} {backend}: {row['fps']:.1f} frames/s, peak MiB {peaks}", flush=True)
            except Exception as error:  # a failing case is a row of the table, not a crash
                row["note"] = common.failure(error)
                torch.cuda.empty_cache()
                print(f"{label} {backend}: {row['note']}", flush=True)
            rows.append(row)
        try:
            notes.append(f"{label}: {agreement(inpainter, height, width)}")
        except Exception as error:
            notes.append(f"{label}: agreement check {common.failure(error)}")
        # Written after every resolution, so a run cut short keeps what it measured.
        path = common.write_report(out_dir, NAME, env, report(env, inpainter.window, rows, notes))
    print()
    print(path.read_text())
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="model GPU benchmark")
    parser.add_argument("--quick", action="store_true", help="one resolution, as a smoke test")
    parser.add_argument(
        "--out", type=Path, default=common.RESULTS_DIR, help="results root (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            f"{NAME}: the GPU benchmark needs a CUDA device; for CPU timings run "
            "`python -m pytest benchmarks --benchmark-only`"
        )
        return 0
    run_gpu(RESOLUTIONS[:1] if args.quick else RESOLUTIONS, args.out)
    return 0


# CPU figures (pytest-benchmark): a few tiny frames, cpu backend vs torch reference backend.


def on_backend(name: str):
    """``inpaint_clip(inpainter, frames, masks)`` with every op on backend ``name``."""

    def inpaint_clip(inpainter: Inpainter, frames: list, masks: list) -> np.ndarray:
        with fused_inpaint.use_backend(name):
            return inpainter(frames, masks)

    return inpaint_clip


def cpu_implementations() -> dict[str, common.Implementation]:
    status = fused_inpaint.available_backends()["cpu"]
    cpu = on_backend("cpu") if status.available else f"cpu backend unavailable: {status.detail}"
    return {"cpu": cpu, "torch": on_backend("torch")}


def pytest_generate_tests(metafunc):
    common.parametrize_implementations(metafunc, "cpu_impl", cpu_implementations())


def test_cpu_stream(benchmark, cpu_impl):
    inpainter = make_inpainter("cpu", torch.float32)
    height, width = CPU_SIZE
    frames, masks = map(list, synthetic_clip(height, width, CPU_FRAMES))
    benchmark.group = f"{NAME} stream {width}x{height}, {CPU_FRAMES} frames, float32"
    benchmark.extra_info["frames"] = CPU_FRAMES
    benchmark(cpu_impl, inpainter, frames, masks)


if __name__ == "__main__":
    sys.exit(main())
