"""Flow source benchmark: throughput of the DIS flow source per thread count and preset.

Any machine:  python benchmarks/bench_flow.py [--quick] [--budget-s S] [--out DIR]
      pairs of frames per second through ``pipeline.flow.DISFlow`` (both directions of a
      pair on the frames with their holes filled, as the pipeline's threads run it; the
      completion of the flow in the hole follows on the device and is not counted)
      at 432x240, 854x480 and 1920x1080, for each preset and 1, 2, 4, ... threads up to
      the CPU count; prints the table and writes DIR/<device>/dis_flow.md, <device> being
      the CUDA device where there is one (the GPU check's machine), else "cpu-" and the
      CPU's model.
CPU:  python -m pytest benchmarks --benchmark-only
      one small pair on one thread, per preset.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import common
import cv2
import numpy as np
import torch
from bench_model import panning_clip

from fused_inpaint.pipeline.flow import DIS_PRESETS, DISFlow, FrameInput

NAME = "dis_flow"
RESOLUTIONS = [(240, 432), (480, 854), (1080, 1920)]  # (H, W)
PAIRS = 48  # pairs per measurement, after a warm-up of one pair per thread
CPU_SIZE = (64, 96)


def thread_counts() -> list[int]:
    """1, 2, 4, ... up to the CPU count (which is included)."""
    cores = os.cpu_count() or 1
    counts = [1 << k for k in range(cores.bit_length()) if 1 << k < cores]
    return counts + [cores]


def frame_inputs(height: int, width: int, count: int) -> list[FrameInput]:
    frames, masks = panning_clip(height, width, count)
    inputs = []
    for frame, hole in zip(frames, masks, strict=True):
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
        inputs.append(FrameInput(frame, hole, image, torch.from_numpy(hole)[None, None]))
    return inputs


def pairs_per_second(preset: str, threads: int, frames: list[FrameInput]) -> float:
    """Pairs of ``frames`` (cycled) per second through a DISFlow of ``threads`` threads."""
    source = DISFlow(torch.device("cpu"), preset, threads)
    try:
        count = len(frames) - 1

        def pairs(n: int) -> None:
            futures = [source.pair(frames[i % count], frames[i % count + 1]) for i in range(n)]
            for future in futures:
                future.result()

        pairs(threads)  # warm-up: every thread makes its DIS object
        start = time.perf_counter()
        pairs(PAIRS)
        return PAIRS / (time.perf_counter() - start)
    finally:
        source.close()


NOTES = [
    f"pairs/s: frame pairs through `DISFlow.pair` (DIS forward and backward on the grayscale "
    f"frames with their holes filled by pull-push; the completion of the flows in the hole "
    f"runs afterwards on the device and is not counted), {PAIRS} pairs queued at once after "
    "one warm-up pair per thread",
    "frames: a smooth texture panning 2 pixels a frame under a moving elliptic hole of about "
    "8% of the frame",
]


def run(resolutions: list[tuple[int, int]], out_dir: Path) -> None:
    env = common.environment()
    counts = thread_counts()
    facts = [
        f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__}; OpenCV's own threads "
        f"(`cv2.getNumThreads()` = {cv2.getNumThreads()}) work inside each call"
    ]
    heading = ["resolution", "preset", *(f"{n} thread{'s' if n > 1 else ''}" for n in counts)]
    lines = [common.table_line(heading), "|---|---|" + "--:|" * len(counts)]

    def measure(case: tuple) -> None:
        (height, width), preset = case
        frames = frame_inputs(height, width, 8)
        rates = []
        for threads in counts:
            rates.append(f"{pairs_per_second(preset, threads, frames):.1f}")
            print(f"{width}x{height} {preset} {threads} threads: {rates[-1]} pairs/s")
        lines.append(common.table_line([f"{width}x{height}", preset, *rates]))

    def render() -> str:
        return common.header(NAME, env, facts, NOTES) + "\n\n" + "\n".join(lines) + "\n"

    cases = itertools.product(resolutions, DIS_PRESETS)
    common.measure_and_write(NAME, env, out_dir, cases, measure, render)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DIS flow source throughput per thread count")
    common.add_run_arguments(parser, "the smallest resolution only")
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    run(RESOLUTIONS[:1] if args.quick else RESOLUTIONS, args.out)
    return 0


# CPU figures (pytest-benchmark): one small pair on one thread, per preset.


def pytest_generate_tests(metafunc):
    if "preset" in metafunc.fixturenames:
        metafunc.parametrize("preset", DIS_PRESETS)


def test_cpu_dis_pair(benchmark, preset):
    frames = frame_inputs(*CPU_SIZE, 2)
    source = DISFlow(torch.device("cpu"), preset, threads=1)
    benchmark.group = f"{NAME} {CPU_SIZE[1]}x{CPU_SIZE[0]} pair, 1 thread"
    try:
        benchmark(lambda: source.pair(frames[0], frames[1]).result())
    finally:
        source.close()


if __name__ == "__main__":
    sys.exit(main())
