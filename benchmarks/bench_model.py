"""Pipeline benchmark: frames/s and peak GPU memory of the Inpainter in each mode and with
each flow source.

GPU:  python benchmarks/bench_model.py [--quick] [--out DIR]   (or: fused-inpaint bench)
      streams a panning texture under a moving hole (batch 1) through
      ``fused_inpaint.Inpainter`` in float16 at 432x240, 854x480 and 1920x1080: offline,
      stream and online mode with DIS flow, offline and online with the network's flow,
      offline DIS with the pure-PyTorch reference ops, and online with the network's flow
      under CUDA graphs; prints the table and writes DIR/<device>/model.md
      (DIR: benchmarks/results by default).
CPU:  python -m pytest benchmarks --benchmark-only
      a few small frames through the Inpainter on the cpu and torch backends.
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
import torch.nn.functional as F

import fused_inpaint
from fused_inpaint.models import DEFAULT_WEIGHTS
from fused_inpaint.pipeline import Inpainter

NAME = "model"
RESOLUTIONS = [(240, 432), (480, 854), (1080, 1920)]  # (H, W)
# (mode, flow, backend, CUDA graphs)
SETUPS = [
    ("offline", "dis", "auto", False),
    ("stream", "dis", "auto", False),
    ("online", "dis", "auto", False),
    ("offline", "network", "auto", False),
    ("online", "network", "auto", False),
    ("offline", "dis", "torch", False),
    ("online", "network", "auto", True),
]
DTYPE = torch.float16
WARMUP_FRAMES = 12
# Output frames after which time and peak memory are read: both after the schedules'
# memory is full (offline holds max_age + chunk + 1 = 91 frames).
CHECKPOINTS = (120, 360)
PAN = 2  # pixels per frame
CPU_SIZE, CPU_FRAMES = (64, 96), 6

NOTES = [
    "batch 1: `Inpainter(dtype=float16, mode=..., flow=...).stream(frames, masks)` yields "
    "each inpainted frame as a uint8 numpy array; the time covers everything per frame "
    "(upload, DIS on CPU threads or the flow head, flow completion, both sweeps, gather, "
    "the network on what is left, download), wall clock, default schedules (offline: "
    "chunks of 60 frames overlapping by 20; stream: lookahead 8; max_age 30)",
    f"frames: a smooth random texture panning {PAN} pixels a frame, a moving elliptic hole "
    f"(`demo.moving_mask`) of about 8% of the frame; {WARMUP_FRAMES} warm-up frames first",
    f"frames/s: steady state, between output frames {CHECKPOINTS[0]} and {CHECKPOINTS[1]} "
    "of one stream; peak memory: `torch.cuda.max_memory_allocated()` since the stream "
    f"began, read after output frame {CHECKPOINTS[0]} and after {CHECKPOINTS[1]}: equal "
    "figures mean memory does not grow with video length; peak reserved: "
    "`torch.cuda.max_memory_reserved()` after the last",
    "auto: the fused ops on the fastest available backend for CUDA tensors; torch: every "
    "op as the pure-PyTorch reference. DIS runs on min(CPU count, 8) threads",
    "CUDA graphs: `Inpainter(compile=True)`: the network (the flow head's encoder and "
    'pair flows are not compiled) through `torch.compile(mode="reduce-overhead")`, one '
    "graph per crop size; warm-up (s) is mostly its compile time",
]


def panning_clip(height: int, width: int, count: int, seed: int = 0):
    """``count`` frames (H, W, 3) uint8 of a smooth texture panning left, and masks (H, W)
    bool of a blob crossing the frame, generated one at a time."""
    generator = torch.Generator().manual_seed(seed)
    span = width + PAN * count
    coarse = torch.rand(1, 3, height // 16 + 2, span // 16 + 2, generator=generator)
    texture = F.interpolate(coarse, size=(height, span), mode="bicubic", align_corners=True)
    texture = (texture[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    y, x = np.ogrid[:height, :width]

    def mask(t: int) -> np.ndarray:
        progress = (t % 60) / 59
        cx, cy = width * (0.25 + 0.5 * progress), height * 0.5
        return ((x - cx) / (0.12 * width)) ** 2 + ((y - cy) / (0.2 * height)) ** 2 < 1

    frames = (texture[:, PAN * t : PAN * t + width] for t in range(count))
    return frames, (mask(t) for t in range(count))


def make_inpainter(setup: tuple, device: str, dtype: torch.dtype) -> Inpainter:
    """An Inpainter with the shipped weights, or else the same random ones every time."""
    mode, flow, _, graphs = setup
    torch.manual_seed(0)
    with warnings.catch_warnings():  # untrained weights time the same as trained ones
        warnings.simplefilter("ignore")
        return Inpainter(device=device, dtype=dtype, mode=mode, flow=flow, compile=graphs)


def measure_stream(inpainter: Inpainter, height: int, width: int) -> dict:
    """Warms up, then streams CHECKPOINTS[-1] frames: the warm-up time, frames/s and peak
    MiB allocated at each checkpoint, peak MiB reserved at the last."""
    start = time.perf_counter()
    for _ in inpainter.stream(*panning_clip(height, width, WARMUP_FRAMES)):
        pass
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    marks = {}
    outputs = inpainter.stream(*panning_clip(height, width, CHECKPOINTS[-1], seed=1))
    for index, _ in enumerate(outputs, start=1):
        if index in CHECKPOINTS:  # the output is on the host: its frame has finished
            marks[index] = (time.perf_counter(), torch.cuda.max_memory_allocated() / 2**20)
    (t0, _), (t1, _) = marks[CHECKPOINTS[0]], marks[CHECKPOINTS[-1]]
    return {
        "warmup_s": warmup_s,
        "fps": (CHECKPOINTS[-1] - CHECKPOINTS[0]) / (t1 - t0),
        "peak_mib": [marks[c][1] for c in CHECKPOINTS],
        "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }


def label(row: dict) -> str:
    height, width = row["size"]
    mode, flow, backend, graphs = row["setup"]
    return f"{width}x{height} {mode} {flow} {backend}" + (" + CUDA graphs" if graphs else "")


def measure_case(case: tuple) -> dict:
    """One row: ``case`` = ((H, W), setup)."""
    (height, width), setup = case
    row = {"size": (height, width), "setup": setup, "note": ""}
    try:
        with fused_inpaint.use_backend(setup[2]):
            row.update(measure_stream(make_inpainter(setup, "cuda", DTYPE), height, width))
        peaks = ", ".join(f"{mib:.0f}" for mib in row["peak_mib"])
        print(f"{label(row)}: {row['fps']:.1f} frames/s, peak MiB {peaks}", flush=True)
    except Exception as error:  # a failing case is a row of the table, not a crash
        row["note"] = common.failure(error)
        torch.cuda.empty_cache()
        print(f"{label(row)}: {row['note']}", flush=True)
    return row


def figures(row: dict) -> list[str]:
    """The row's measured cells, or dashes where it did not run."""
    if "fps" not in row:
        return ["—"] * (4 + len(CHECKPOINTS))
    return [
        f"{row['fps']:.1f}",
        f"{1e3 / row['fps']:.2f}",
        *(f"{mib:.0f}" for mib in row["peak_mib"]),
        f"{row['reserved_mib']:.0f}",
        f"{row['warmup_s']:.1f}",
    ]


def markdown_table(rows: list[dict]) -> str:
    """One line per case, by resolution, then in the order of SETUPS."""
    peaks = " | ".join(f"peak MiB after {c} frames" for c in CHECKPOINTS)
    lines = [
        f"| resolution | mode | flow | backend | CUDA graphs | frames/s | ms/frame | {peaks} "
        "| peak MiB reserved | warm-up (s) | note |",
        "|---|---|---|---|---|--:|--:|" + "--:|" * len(CHECKPOINTS) + "--:|--:|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["size"], SETUPS.index(r["setup"]))):
        height, width = row["size"]
        mode, flow, backend, graphs = row["setup"]
        cells = [f"{width}x{height}", mode, flow, backend, "yes" if graphs else "no"]
        lines.append(common.table_line([*cells, *figures(row), row["note"]]))
    return "\n".join(lines)


def report(env: common.Environment, rows: list[dict]) -> str:
    weights = "shipped" if DEFAULT_WEIGHTS.exists() else "randomly initialised (none shipped)"
    backends = "; ".join(f"{k}: {v}" for k, v in fused_inpaint.available_backends().items())
    facts = [f"network: `SlimInpaintNet`, float16; weights {weights}", f"backends: {backends}"]
    return common.header(NAME, env, facts, NOTES) + "\n\n" + markdown_table(rows) + "\n"


def run_gpu(resolutions: list[tuple[int, int]], out_dir: Path) -> None:
    env = common.environment()
    print(env.device, flush=True)
    rows: list[dict] = []
    cases = itertools.product(resolutions, SETUPS)
    common.measure_and_write(
        NAME, env, out_dir, cases, lambda case: rows.append(measure_case(case)),
        lambda: report(env, rows),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, NAME, "pipeline GPU benchmark", RESOLUTIONS, run_gpu)


# CPU figures (pytest-benchmark): a few small frames, cpu backend vs torch reference backend.


def on_backend(name: str):
    """``inpaint_clip(inpainter, frames, masks)`` with every op on backend ``name``."""

    def inpaint_clip(inpainter: Inpainter, frames: list, masks: list) -> np.ndarray:
        with fused_inpaint.use_backend(name):
            return inpainter(frames, masks)

    return inpaint_clip


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(on_backend)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", ["offline", "online"])


def test_cpu_stream(benchmark, cpu_impl, mode):
    inpainter = make_inpainter((mode, "dis", None, False), "cpu", torch.float32)
    height, width = CPU_SIZE
    frames, masks = map(list, panning_clip(height, width, CPU_FRAMES))
    benchmark.group = f"{NAME} {mode} {width}x{height}, {CPU_FRAMES} frames, float32"
    benchmark.extra_info["frames"] = CPU_FRAMES
    benchmark(cpu_impl, inpainter, frames, masks)


if __name__ == "__main__":
    sys.exit(main())
