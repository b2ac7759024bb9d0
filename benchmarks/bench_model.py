"""Pipeline benchmark: frames/s and peak GPU memory of the Inpainter in each mode and with
each flow source.

Script: python benchmarks/bench_model.py [--quick] [--budget-s S] [--out DIR]
      (or: fused-inpaint bench)
      streams a panning texture under a moving hole (batch 1) through
      ``fused_inpaint.Inpainter``: on a GPU in float16 at 432x240, 854x480 and 1920x1080,
      offline, stream and online mode with DIS flow, offline and online with the
      network's flow, offline DIS with the pure-PyTorch reference ops, and online with the
      network's flow under CUDA graphs; without a GPU the uncompiled setups in float32 at
      432x240 on the CPU, and the DIS modes at 854x480 and 1920x1080; beside each
      resolution, DIS alone on the same frames in the same run. Prints the table and
      writes DIR/<device>/model.md (DIR: benchmarks/results by default; <device> the GPU,
      or "cpu-" and the CPU's model).
pytest: python -m pytest benchmarks --benchmark-only
      a few small frames through the Inpainter on the cpu and torch backends.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common
import cv2
import numpy as np
import torch
import torch.nn.functional as F

import fused_inpaint
from fused_inpaint.models import DEFAULT_WEIGHTS
from fused_inpaint.pipeline import Inpainter
from fused_inpaint.pipeline.flow import dis_options

NAME = "model"
RESOLUTIONS = [(240, 432), (480, 854), (1080, 1920)]  # (H, W)
# (mode, flow, backend, CUDA graphs, hole): hole "moving" crosses a panning texture,
# "static" stays on a still one, where nothing uncovers it and the fill does the work.
SETUPS = [
    ("offline", "dis", "auto", False, "moving"),
    ("stream", "dis", "auto", False, "moving"),
    ("online", "dis", "auto", False, "moving"),
    ("offline", "dis", "auto", False, "static"),
    ("offline", "network", "auto", False, "moving"),
    ("online", "network", "auto", False, "moving"),
    ("offline", "dis", "torch", False, "moving"),
    ("online", "network", "auto", True, "moving"),
]
DTYPE = torch.float16
WARMUP_FRAMES = 12
# Output frames after which time and peak memory are read: both after the schedules'
# memory is full (offline holds max_age + chunk + 1 = 91 frames).
CHECKPOINTS = (120, 360)
PAN = 2  # pixels per frame
# On the CPU, by resolution: the long stream at 1080p is where memory would grow.
CPU_CHECKPOINTS = {(240, 432): (100, 160), (480, 854): (100, 200), (1080, 1920): (150, 300)}
DIS_FRAMES = 60  # frames DIS alone is timed on, both directions of each pair
CPU_SIZE, CPU_FRAMES = (64, 96), 6

NOTES = [
    "batch 1: `Inpainter(dtype=float16, mode=..., flow=...).stream(frames, masks)` yields "
    "each inpainted frame as a uint8 numpy array; the time covers everything per frame "
    "(upload, DIS on CPU threads or the flow head, flow completion, both sweeps, gather, "
    "the network on what is left, download), wall clock, default schedules (offline: "
    "chunks of 60 frames overlapping by 20; stream: lookahead 8; max_age 30)",
    f"frames: a smooth random texture panning {PAN} pixels a frame, a moving elliptic hole "
    f"(`demo.moving_mask`) of about 8% of the frame; a static hole: the texture still, an "
    f"ellipse of 15% of the frame at its centre; {WARMUP_FRAMES} warm-up frames first",
    f"frames/s: the {CHECKPOINTS[1]} frames of one stream over its whole wall time (offline "
    "mode yields a chunk at a time); peak memory: `torch.cuda.max_memory_allocated()` since "
    f"the stream began, read after output frame {CHECKPOINTS[0]} and after {CHECKPOINTS[1]}: equal "
    "figures mean memory does not grow with video length; peak reserved: "
    "`torch.cuda.max_memory_reserved()` after the last",
    "auto: the fused ops on the fastest available backend for CUDA tensors; torch: every "
    "op as the pure-PyTorch reference. DIS runs on min(CPU count, 8) threads",
    "CUDA graphs: `Inpainter(compile=True)`: the network (the flow head's encoder and "
    'pair flows are not compiled) through `torch.compile(mode="reduce-overhead")`, one '
    "graph per crop size; warm-up (s) is mostly its compile time",
]
CPU_NOTE = (
    "frames/s: the frames of one stream (160 at 432x240, 200 at 854x480, 300 at "
    "1920x1080) over its whole wall time (offline mode yields a chunk at a time); peak RSS: "
    "the process's peak resident memory (`VmHWM`, reset before each row), torch and the "
    "network included, after output frames 100 and 160 (432x240), 100 and 200 (854x480), "
    "150 and 300 (1920x1080): equal figures mean memory does not grow with the stream; the "
    "machine was shared with other work, so the seconds are noisy: the ratio to DIS alone, "
    "measured in the same run, is the figure"
)
DIS_NOTE = (
    f"DIS alone: OpenCV's DIS (the pipeline's default preset, medium) on the first "
    f"{DIS_FRAMES} frames of the same clip in grayscale, both directions of each pair, on "
    "as many threads as the pipeline's DIS (min(CPU count, 8)), nothing else: ms per frame; "
    "x DIS: the pipeline's ms per frame over it"
)
CPU_SIZES = [(240, 432), (480, 854), (1080, 1920)]
# The setups measured above 432x240 on the CPU: the default flow, each mode.
CPU_LARGE_SETUPS = SETUPS[:3]


def panning_clip(height: int, width: int, count: int, seed: int = 0, hole: str = "moving"):
    """``count`` frames (H, W, 3) uint8 of a smooth texture panning left, and masks (H, W)
    bool of a blob crossing the frame every 60 frames; the masks are made before the
    stream, so that making them is not timed. ``hole="static"``: the texture still and
    the blob (15% of the frame) at its centre."""
    if hole == "static":
        frames, _ = panning_clip(height, width, 1, seed)
        still = next(frames)
        y, x = np.ogrid[:height, :width]
        blob = ((x - width / 2) / (0.22 * width)) ** 2 + ((y - height / 2) / (0.22 * height)) ** 2
        return (still for _ in range(count)), (blob < 1 for _ in range(count))
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

    masks = [mask(t) for t in range(min(count, 60))]
    frames = (texture[:, PAN * t : PAN * t + width] for t in range(count))
    return frames, (masks[t % 60] for t in range(count))


def make_inpainter(setup: tuple, device: str, dtype: torch.dtype) -> Inpainter:
    """An Inpainter with the shipped weights, or else the same random ones every time."""
    mode, flow, _, graphs, _ = setup
    torch.manual_seed(0)
    with warnings.catch_warnings():  # untrained weights time the same as trained ones
        warnings.simplefilter("ignore")
        return Inpainter(device=device, dtype=dtype, mode=mode, flow=flow, compile=graphs)


def peak_mib(cuda: bool) -> float:
    """Peak MiB allocated on the GPU since the last reset, or the process's peak RSS."""
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def reset_peak(cuda: bool) -> None:
    """Starts the peak of ``peak_mib`` afresh (on Linux; elsewhere the process's peak)."""
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def dis_alone(frames: list[np.ndarray], preset: str = "medium") -> tuple[float, float]:
    """(wall, CPU) seconds of DIS alone (``preset``, both directions of each pair of
    ``frames`` (H, W, 3) uint8, in grayscale) on the pipeline's DIS threads; CPU: the
    process's user and system time over the same span, every thread's."""
    preset, threads = dis_options(preset, None)
    grays = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    kind = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
    with ThreadPoolExecutor(threads) as pool:
        engines = list(pool.map(lambda _: cv2.DISOpticalFlow_create(kind), range(threads)))

        def pair(k: int) -> None:
            dis = engines[k % threads]
            dis.calc(grays[k], grays[k + 1], None)
            dis.calc(grays[k + 1], grays[k], None)

        # One DIS object a thread: pairs k and k + threads never run at once.
        def lane(first: int) -> None:
            for k in range(first, len(grays) - 1, threads):
                pair(k)

        start, cpu = time.perf_counter(), cpu_seconds()
        list(pool.map(lane, range(threads)))
        return time.perf_counter() - start, cpu_seconds() - cpu


def cpu_seconds() -> float:
    """The process's user and system CPU seconds so far, all threads."""
    times = os.times()
    return times.user + times.system


def dis_alone_ms(height: int, width: int) -> float:
    """ms per frame of DIS alone (the default preset) on the first DIS_FRAMES frames of the
    benchmark's clip, on the pipeline's DIS threads."""
    frames, _ = panning_clip(height, width, DIS_FRAMES, seed=1)
    return 1e3 * dis_alone(list(frames))[0] / (DIS_FRAMES - 1)


def measure_stream(
    inpainter: Inpainter, height: int, width: int, checkpoints: tuple, hole: str
) -> dict:
    """Warms up, then streams ``checkpoints[-1]`` frames under a ``hole`` of
    ``panning_clip``: the warm-up time, frames/s and peak MiB at each checkpoint, peak MiB
    reserved at the last (GPU)."""
    cuda = inpainter.device.type == "cuda"
    start = time.perf_counter()
    for _ in inpainter.stream(*panning_clip(height, width, WARMUP_FRAMES, hole=hole)):
        pass
    warmup_s = time.perf_counter() - start
    reset_peak(cuda)
    marks = {}
    clip = panning_clip(height, width, checkpoints[-1], seed=1, hole=hole)
    start = time.perf_counter()
    for index, _ in enumerate(inpainter.stream(*clip), start=1):
        if index in checkpoints:  # the output is on the host: its frame has finished
            marks[index] = (time.perf_counter(), peak_mib(cuda))
    return {
        "warmup_s": warmup_s,
        # The whole stream: offline mode yields its frames in bursts, a chunk at a time.
        "fps": checkpoints[-1] / (marks[checkpoints[-1]][0] - start),
        "peak_mib": [marks[c][1] for c in checkpoints],
        "reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
    }


def label(row: dict) -> str:
    height, width = row["size"]
    mode, flow, backend, graphs, hole = row["setup"]
    graphs = " + CUDA graphs" if graphs else ""
    return f"{width}x{height} {mode} {flow} {backend}{graphs}, {hole} hole"


def measure_case(
    case: tuple, device: str, dtype: torch.dtype, checkpoints: tuple, dis_ms: dict
) -> dict:
    """One row: ``case`` = ((H, W), setup); ``dis_ms``: DIS alone by resolution, measured
    here the first time a resolution comes."""
    (height, width), setup = case
    row = {"size": (height, width), "setup": setup, "note": ""}
    try:
        if (height, width) not in dis_ms:
            dis_ms[height, width] = dis_alone_ms(height, width)
        row["dis_ms"] = dis_ms[height, width]
        with fused_inpaint.use_backend(setup[2]):
            inpainter = make_inpainter(setup, device, dtype)
            row.update(measure_stream(inpainter, height, width, checkpoints, setup[4]))
        del inpainter
        peaks = ", ".join(f"{mib:.0f}" for mib in row["peak_mib"])
        ratio = 1e3 / row["fps"] / row["dis_ms"]
        print(
            f"{label(row)}: {row['fps']:.1f} frames/s ({ratio:.2f} x DIS alone), peak MiB {peaks}",
            flush=True,
        )
    except Exception as error:  # a failing case is a row of the table, not a crash
        row["note"] = common.failure(error)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(f"{label(row)}: {row['note']}", flush=True)
    return row


def figures(row: dict) -> list[str]:
    """The row's measured cells, or dashes where it did not run."""
    if "fps" not in row:
        return ["—"] * (6 + len(CHECKPOINTS))
    return [
        f"{row['fps']:.1f}",
        f"{1e3 / row['fps']:.2f}",
        f"{row['dis_ms']:.1f}",
        f"{1e3 / row['fps'] / row['dis_ms']:.2f}",
        *(f"{mib:.0f}" for mib in row["peak_mib"]),
        "—" if row["reserved_mib"] is None else f"{row['reserved_mib']:.0f}",
        f"{row['warmup_s']:.1f}",
    ]


def markdown_table(rows: list[dict], memory: str) -> str:
    """One line per case, by resolution, then in the order of SETUPS."""
    peaks = f"{memory} at the first checkpoint | {memory} at the second"
    lines = [
        "| resolution | mode | flow | backend | CUDA graphs | hole | frames/s | ms/frame "
        f"| DIS alone ms/frame | x DIS | {peaks} | peak MiB reserved | warm-up (s) | note |",
        "|---|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["size"], SETUPS.index(r["setup"]))):
        height, width = row["size"]
        mode, flow, backend, graphs, hole = row["setup"]
        cells = [f"{width}x{height}", mode, flow, backend, "yes" if graphs else "no", hole]
        lines.append(common.table_line([*cells, *figures(row), row["note"]]))
    return "\n".join(lines)


def report(env: common.Environment, rows: list[dict], cuda: bool) -> str:
    weights = "shipped" if DEFAULT_WEIGHTS.exists() else "randomly initialised (none shipped)"
    backends = "; ".join(f"{k}: {v}" for k, v in fused_inpaint.available_backends().items())
    dtype = "float16" if cuda else "float32"
    facts = [f"network: `SlimInpaintNet`, {dtype}; weights {weights}", f"backends: {backends}"]
    notes = [*NOTES, DIS_NOTE] if cuda else [*NOTES[:2], CPU_NOTE, NOTES[3], DIS_NOTE]
    memory = "peak MiB" if cuda else "peak RSS MiB"
    table = markdown_table(rows, memory)
    return common.header(NAME, env, facts, notes) + "\n\n" + table + "\n"


def cases(resolutions: list[tuple[int, int]], cuda: bool, only: str = "") -> list[tuple]:
    """((H, W), setup) to measure, those whose label holds ``only``: every setup on the
    GPU; on the CPU the uncompiled ones at the smallest resolution, the DIS modes above it."""
    if cuda:
        chosen = list(itertools.product(resolutions, SETUPS))
    else:
        small = [s for s in SETUPS if not s[3]]
        chosen = [
            (size, setup)
            for size in resolutions
            for setup in (small if size == CPU_SIZES[0] else CPU_LARGE_SETUPS)
        ]
    return [case for case in chosen if only in label({"size": case[0], "setup": case[1]})]


def run(resolutions: list[tuple[int, int]], out_dir: Path, only: str = "") -> None:
    """Every setup at each resolution on the GPU; without one, the CPU's share."""
    cuda = torch.cuda.is_available()
    env = common.environment()
    print(env.device, flush=True)
    device, dtype = ("cuda", DTYPE) if cuda else ("cpu", torch.float32)
    rows: list[dict] = []
    dis_ms: dict = {}

    def measure(case: tuple) -> None:
        checkpoints = CHECKPOINTS if cuda else CPU_CHECKPOINTS[case[0]]
        rows.append(measure_case(case, device, dtype, checkpoints, dis_ms))

    common.measure_and_write(
        NAME, env, out_dir, cases(resolutions, cuda, only), measure, lambda: report(env, rows, cuda)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pipeline benchmark")
    common.add_run_arguments(parser, "the smallest resolution only")
    parser.add_argument(
        "--sizes",
        type=lambda text: [tuple(map(int, size.split("x")))[::-1] for size in text.split(",")],
        help="WxH,... in the order measured (default: every resolution, smallest first)",
    )
    parser.add_argument(
        "--only", default="", help="measure only the rows whose label holds this text "
        "(as printed, e.g. 'dis auto')",
    )  # fmt: skip
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    resolutions = args.sizes or (RESOLUTIONS if torch.cuda.is_available() else CPU_SIZES)
    run(resolutions[:1] if args.quick else resolutions, args.out, args.only)
    return 0


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
    inpainter = make_inpainter((mode, "dis", None, False, "moving"), "cpu", torch.float32)
    height, width = CPU_SIZE
    frames, masks = map(list, panning_clip(height, width, CPU_FRAMES))
    benchmark.group = f"{NAME} {mode} {width}x{height}, {CPU_FRAMES} frames, float32"
    benchmark.extra_info["frames"] = CPU_FRAMES
    benchmark(cpu_impl, inpainter, frames, masks)


if __name__ == "__main__":
    sys.exit(main())
