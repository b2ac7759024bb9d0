"""Where the pipeline's time goes: ``Inpainter.stream`` on the CPU beside DIS alone on the
same frames, the pipeline without the flow's cost, and a cProfile.

Script: python benchmarks/bench_profile.py [--frames N] [--size WxH] [--mode M]
      [--preset P] [--out DIR]
      streams the panning clip of ``bench_model`` (a moving hole of about 8% of the frame)
      through ``Inpainter(device="cpu", dis_preset=P)`` (default: the pipeline's, medium),
      wall and CPU time; again with the same run's DIS estimates handed back done (the
      rest of the pipeline alone); DIS alone on the same frames (both directions of every
      pair, on the pipeline's DIS threads); then the pipeline under cProfile. Writes
      DIR/<device>/profile.md: the ratio pipeline / DIS, the bound that the CPU time of
      DIS and of the rest set on a machine of this many CPUs, and the functions that take
      the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import bench_model
import common
import torch

from fused_inpaint.pipeline import Inpainter
from fused_inpaint.pipeline.flow import DISFlow, resolved

NAME = "profile"
TOP = 25


class Replay:
    """A flow source that records another's estimates on a first run, then hands them back
    already done, in the order they are asked for: the pipeline without the flow's cost."""

    name = "dis"
    threads = 1  # the pipeline treats it as DIS on its threads: the same thread settings

    def __init__(self, source):
        self.source, self.estimates, self.next = source, [], None

    def pair(self, a, b) -> Future:
        if self.next is None:
            self.estimates.append(self.source.pair(a, b))
            return self.estimates[-1]
        self.next += 1
        return resolved(self.estimates[self.next - 1].result())

    def close(self) -> None:
        self.next = 0  # the next run replays


def timed(inpainter: Inpainter, frames: list, masks: list) -> tuple[float, float]:
    """(wall, CPU) seconds of one stream of ``frames`` under ``masks``."""
    start, cpu = time.perf_counter(), bench_model.cpu_seconds()
    for _ in inpainter.stream(frames, masks):
        pass
    return time.perf_counter() - start, bench_model.cpu_seconds() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pipeline profile")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="854x480", help="WxH")
    parser.add_argument("--mode", default="offline")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--out", default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    load = "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())
    frames, masks = map(list, bench_model.panning_clip(height, width, args.frames))
    inpainter = Inpainter(device="cpu", mode=args.mode, dis_preset=args.preset)
    for _ in inpainter.stream(frames[:4], masks[:4]):  # load and warm up
        pass
    replay = Replay(DISFlow(torch.device("cpu"), args.preset))
    replayed = Inpainter(device="cpu", mode=args.mode, flow=replay)
    timed(replayed, frames, masks)  # records the estimates
    pipeline, rest = timed(inpainter, frames, masks), timed(replayed, frames, masks)
    replay.source.close()
    dis = bench_model.dis_alone(frames, args.preset)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for _ in inpainter.stream(frames, masks):
        pass
    profile.disable()
    profiled_s = time.perf_counter() - start
    cores = os.cpu_count() or 1
    pairs = args.frames - 1  # DIS alone: per pair, as the pipeline per frame
    bound = (dis[1] / pairs + rest[1] / args.frames) / cores  # seconds a frame

    def ms(seconds: float, count: int = args.frames) -> str:
        return f"{1e3 * seconds / count:.1f}"

    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(TOP)
    env = common.environment()
    facts = [
        f"clip: `bench_model.panning_clip`, {args.frames} frames at {width}x{height}; "
        f"`Inpainter(device='cpu', mode='{args.mode}', dis_preset='{args.preset}')`",
        f"load average (1, 5, 15 min) at the start: {load} on {os.cpu_count()} CPUs; on a "
        "shared machine compare the ratio, measured in one run, more than the seconds",
        f"pipeline: {ms(pipeline[0])} ms a frame ({ms(pipeline[1])} CPU ms); DIS alone (the "
        f"pipeline's threads, both directions): {ms(dis[0], pairs)} ({ms(dis[1], pairs)} CPU "
        f"ms); ratio {pipeline[0] / args.frames / (dis[0] / pairs):.2f}",
        f"the pipeline without the flow's cost (the same run's estimates handed back "
        f"done): {ms(rest[0])} ms a frame ({ms(rest[1])} CPU ms)",
        f"bound: DIS's CPU time and the rest's (the fill of DIS's input in neither), spread "
        f"over all {cores} CPUs without a gap, {ms(bound, 1)} ms a frame, "
        f"{bound / (dis[0] / pairs):.2f}x DIS alone",
        f"under cProfile (the listing below): {profiled_s:.2f} s",
    ]
    root = str(Path(__file__).resolve().parents[1]) + "/"
    lines = text.getvalue().replace(root, "").strip().splitlines()[-TOP - 3 :]
    body = "\n".join(line.rstrip() for line in lines)
    report = common.header(NAME, env, facts, []) + f"\n\n```\n{body}\n```\n"
    path = common.write_report(args.out, NAME, env, report)
    print(report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
