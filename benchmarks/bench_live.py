"""Live benchmark: sustained frames/s, drops and latency of a loopback live run, per mode.

Script: python benchmarks/bench_live.py [--quick] [--budget-s S] [--seconds S] [--out DIR]
      a sender process (``fused_inpaint.live.loopback``) streams the generated clip as
      MPEG-TS over UDP on 127.0.0.1 at 25 frames/s; this process receives it as
      ``fused-inpaint run`` does (``io.LiveReader``, realtime ``inpaint_live`` with a static
      mask, ``io.StreamWriter`` sending H.264 MPEG-TS to another loopback port), in online
      and stream mode at 432x240 and 854x480, on the GPU when there is one, else the CPU.
      After WARM_UP_S seconds (the first frames: the network fills the whole hole) it
      counts, over --seconds (default 30; 10 with --quick, which takes 432x240 alone),
      frames read and written, drops, latency from capture to write (median and 95th
      percentile, ms and frames) and the resident memory at the start and the end of that
      span. Writes DIR/<device>/live.md, the table rewritten after each row.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import common
import numpy as np
import torch

from fused_inpaint import io
from fused_inpaint.live import inpaint_live
from fused_inpaint.live.loopback import clip_frames
from fused_inpaint.pipeline import Inpainter

NAME = "live"
FPS = 25
RESOLUTIONS = [(240, 432), (480, 854)]  # (H, W)
MODES = ["online", "stream"]
WARM_UP_S = 5
OPEN_TIMEOUT_S = 60  # the sender's start: Python, torch and its clip
HOLE_AREA = 0.08  # of the frame: an ellipse where a logo would be
ALONE_FRAMES = 40  # frames of the pipeline alone, timed after its first few


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def static_hole(height: int, width: int) -> np.ndarray:
    """(H, W) bool: an ellipse of HOLE_AREA of the frame, right of the centre."""
    y, x = np.ogrid[:height, :width]
    ry, rx = height * 0.2, width * HOLE_AREA / (np.pi * 0.2)
    return ((x - 0.6 * width) / rx) ** 2 + ((y - 0.5 * height) / ry) ** 2 < 1


def pipeline_alone_fps(inpainter: Inpainter, height: int, width: int, hole) -> float:
    """Frames/s of ``inpainter`` alone on the sender's frames, read from memory: what the
    live run could reach on this machine at this moment."""
    frames = list(clip_frames(height, width, ALONE_FRAMES))
    times = [time.perf_counter() for _ in inpainter.stream(frames, hole)]
    return (len(times) - 5) / (times[-1] - times[4])


def rss_mib() -> float:
    """The process's resident memory now, MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


@dataclass
class Row:
    resolution: str
    mode: str
    preset: str
    alone_fps: float | None = None
    seconds: float | None = None
    input_fps: float | None = None
    output_fps: float | None = None
    dropped_pct: float | None = None
    ms: tuple[int, int] | None = None
    frames: tuple[int, int] | None = None
    rss: tuple[float, float] | None = None
    note: str = ""


class Window:
    """Per-frame figures of the frames written after the warm-up, until the span ends."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start: float | None = None
        self.end: float | None = None
        self.first_read = self.last_read = 0
        self.written: list[tuple[float, float, int]] = []  # (latency ms, write time, frames)
        self.rss_start = self.rss_end = 0.0
        self.done = threading.Event()

    def on_write(self, stats, capture) -> None:
        now = time.monotonic()
        if self.start is None:
            if stats.first_write is not None and now - stats.first_write >= WARM_UP_S:
                self.start, self.first_read, self.rss_start = now, capture.read, rss_mib()
            return
        if now - self.start > self.seconds:
            if not self.done.is_set():
                self.end, self.last_read, self.rss_end = now, capture.read, rss_mib()
                self.done.set()
            return
        latency_frames = capture.read - 1 - stats.last_index
        self.written.append(((now - stats.last_capture) * 1e3, now, latency_frames))


def measure(height: int, width: int, mode: str, preset: str, seconds: float) -> Row:
    row = Row(f"{width}x{height}", mode, preset)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cpus = len(os.sched_getaffinity(0))  # those this process may use, under taskset too
    torch.set_num_threads(min(torch.get_num_threads(), cpus))
    inpainter = Inpainter(device=device, mode=mode, dis_preset=preset, threads=min(cpus, 8))
    hole = static_hole(height, width)
    row.alone_fps = pipeline_alone_fps(inpainter, height, width, hole)
    count = int((WARM_UP_S + seconds + 10) * FPS)  # the sender outlasts the span
    url = f"udp://127.0.0.1:{free_udp_port()}"
    sender = subprocess.Popen(
        [sys.executable, "-m", "fused_inpaint.live.loopback", url, "--size", f"{width}x{height}",
         "--frames", str(count), "--fps", str(FPS)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    window = Window(seconds)
    stop = window.done
    try:
        with io.LiveReader(url, timeout=OPEN_TIMEOUT_S) as source:
            output = f"udp://127.0.0.1:{free_udp_port()}"  # nobody listens: sent and gone
            with io.StreamWriter(output, source.fps, source.time_base) as writer:
                inpaint_live(
                    inpainter, source, hole, writer, realtime=True, stop=stop,
                    on_write=window.on_write,
                )  # fmt: skip
    finally:
        sender.kill()
        sender.wait()
    if not window.done.is_set() or len(window.written) < 2:
        row.note = "the stream ended before the span did"
        return row
    latency = np.array([ms for ms, _, _ in window.written])
    frames = np.array([f for _, _, f in window.written])
    span = window.written[-1][1] - window.written[0][1]
    read = window.last_read - window.first_read
    row.seconds = span
    row.input_fps = read / (window.end - window.start)
    row.output_fps = (len(window.written) - 1) / span
    row.dropped_pct = 100 * max(0, read - len(window.written)) / read
    row.ms = tuple(int(round(v)) for v in np.percentile(latency, (50, 95)))
    row.frames = tuple(int(round(v)) for v in np.percentile(frames, (50, 95)))
    row.rss = (window.rss_start, window.rss_end)
    return row


def markdown(rows: list[Row]) -> str:
    lines = [
        "| resolution | mode | DIS preset | span (s) | input frames/s | output frames/s "
        "| dropped | latency p50 (ms) | p95 (ms) | p50 (frames) | p95 (frames) "
        "| RSS MiB at start | RSS MiB at end | pipeline alone frames/s | note |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        alone = "—" if r.alone_fps is None else f"{r.alone_fps:.1f}"
        if r.seconds is None:
            figures = ["—"] * 10
        else:
            figures = [
                f"{r.seconds:.0f}", f"{r.input_fps:.1f}", f"{r.output_fps:.1f}",
                f"{r.dropped_pct:.1f}%", *map(str, r.ms), *map(str, r.frames),
                f"{r.rss[0]:.0f}", f"{r.rss[1]:.0f}",
            ]  # fmt: skip
        cells = [r.resolution, r.mode, r.preset, *figures, alone, r.note]
        lines.append(common.table_line(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="live benchmark")
    common.add_run_arguments(parser, "432x240 alone, 10 s a row")
    parser.add_argument("--seconds", type=float, help="span measured per row (default 30)")
    parser.add_argument("--preset", default="ultrafast", help="DIS preset (default ultrafast)")
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    seconds = args.seconds or (10 if args.quick else 30)
    resolutions = RESOLUTIONS[:1] if args.quick else RESOLUTIONS
    cases = [(h, w, mode) for h, w in resolutions for mode in args.modes]
    env = common.environment()
    rows: list[Row] = []
    facts = [
        f"source: `fused_inpaint.live.loopback` (the generated clip, H.264 MPEG-TS over UDP on "
        f"127.0.0.1) at {FPS} frames/s, in a process of its own on the same machine",
        "receiver: `io.LiveReader` -> `inpaint_live(realtime=True, max_delay=0.2 s)` -> "
        "`io.StreamWriter` (H.264 MPEG-TS to a loopback port), a static elliptic hole of "
        f"{HOLE_AREA:.0%} of the frame; `Inpainter(mode=..., dis_preset=...)`, default "
        "weights, float32 on the CPU, float16 on a GPU; DIS and torch threads: the CPUs "
        "this process may use",
        f"figures over the span after {WARM_UP_S} s of warm-up: input frames/s = frames read "
        "/ span; dropped = frames read and not written; latency from a frame's capture "
        "(decoded) to its write (sent), in ms and in frames of the source read meanwhile; "
        "RSS: this process's resident memory at the span's start and end; pipeline alone: "
        f"the same Inpainter on {ALONE_FRAMES} of the sender's frames from memory, just "
        "before the row, the most the live run could reach on the machine as loaded then",
    ]
    if not torch.cuda.is_available():
        load = os.getloadavg()[0]
        facts.append(
            f"1-minute load average at the start: {load:.1f} on {os.cpu_count()} CPUs (above "
            "the CPU count, other work shared the CPU and the figures are pessimistic)"
        )

    def measure_case(case):
        height, width, mode = case
        rows.append(measure(height, width, mode, args.preset, seconds))
        yield

    def render() -> str:
        return common.header(NAME, env, facts, []) + "\n\n" + markdown(rows) + "\n"

    common.measure_and_write(NAME, env, args.out, cases, measure_case, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
