"""Where the pipeline's time goes: a cProfile of ``Inpainter.stream`` on the CPU, beside
DIS alone on the same frames.

Script: python benchmarks/bench_profile.py [--frames N] [--size WxH] [--mode M] [--out DIR]
      streams the panning clip of ``bench_model`` (a moving hole of about 8% of the frame)
      through ``Inpainter(device="cpu", dis_preset="ultrafast")`` under cProfile, then
      times DIS alone (both directions of every pair, one thread, the same frames) and
      writes DIR/<device>/profile.md: the ratio pipeline / DIS and the functions that take
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
from pathlib import Path

import bench_model
import common
import cv2
import numpy as np

from fused_inpaint.pipeline import Inpainter

NAME = "profile"
TOP = 25


def dis_alone_s(frames: list[np.ndarray], preset: str) -> float:
    """Seconds DIS takes, on one thread, for both directions of every adjacent pair."""
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    start = time.perf_counter()
    for a, b in zip(grays, grays[1:], strict=False):
        dis.calc(a, b, None)
        dis.calc(b, a, None)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pipeline profile")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="854x480", help="WxH")
    parser.add_argument("--mode", default="offline")
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--out", default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    load = "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())
    frames, masks = map(list, bench_model.panning_clip(height, width, args.frames))
    inpainter = Inpainter(device="cpu", mode=args.mode, dis_preset=args.preset)
    for _ in inpainter.stream(frames[:4], masks[:4]):  # load and warm up
        pass
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for _ in inpainter.stream(frames, masks):
        pass
    profile.disable()
    pipeline_s = time.perf_counter() - start
    dis_s = dis_alone_s(frames, args.preset)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(TOP)
    env = common.environment()
    facts = [
        f"clip: `bench_model.panning_clip`, {args.frames} frames at {width}x{height}; "
        f"`Inpainter(device='cpu', mode='{args.mode}', dis_preset='{args.preset}')`",
        f"load average (1, 5, 15 min) at the start: {load} on {os.cpu_count()} CPUs; on a "
        "shared machine compare the ratio, measured in one run, more than the seconds",
        f"pipeline: {pipeline_s:.2f} s ({args.frames / pipeline_s:.1f} frames/s, under "
        f"cProfile); DIS alone, one thread, both directions: {dis_s:.2f} s; ratio "
        f"{pipeline_s / dis_s:.2f}",
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
