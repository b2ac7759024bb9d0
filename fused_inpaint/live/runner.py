"""``inpaint_live``: a live source through ``Inpainter.stream`` to a writer, frame by frame,
with each frame's timestamp carried through and its latency counted."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fused_inpaint.io import DEFAULT_FPS, TimedFrame
from fused_inpaint.live.capture import DEFAULT_CAPACITY, DEFAULT_MAX_DELAY, Capture
from fused_inpaint.live.stats import LatencyStats
from fused_inpaint.pipeline import Inpainter


@dataclass
class LiveResult:
    """How a live run went: ``ending`` says why it ended ("the input ended", "no frame
    from ... for 10 s", "stopped"); ``error`` is what failed in the source, if anything."""

    read: int
    written: int
    dropped: int
    ending: str
    error: BaseException | None
    stats: LatencyStats

    def summary(self) -> str:
        return self.stats.summary(self.read, self.dropped)


def timed(frames: Iterable, fps: Fraction | float | None) -> Iterator[TimedFrame]:
    """``frames`` as TimedFrames: those of a live source as they are, plain (H, W, 3)
    arrays (a file, a folder) numbered at ``fps`` and captured when read."""
    time_base = 1 / Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
    for index, frame in enumerate(frames):
        if isinstance(frame, TimedFrame):
            yield frame
        else:
            yield TimedFrame(np.asarray(frame), index, index, time_base, time.monotonic())


class _Timestamps:
    """Each frame's pts in the writer's ``time_base``: the source's, rescaled where the
    bases differ, and made strictly increasing (a source may repeat or step back)."""

    def __init__(self, time_base: Fraction | None, fps: Fraction | float | None):
        self.time_base = time_base
        self.frame_s = 1 / Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
        self.last: int | None = None

    def __call__(self, frame: TimedFrame) -> int | None:
        if self.time_base is None:
            return None
        if frame.pts is not None and frame.time_base == self.time_base:
            pts = frame.pts
        else:
            known = frame.pts is not None and frame.time_base is not None
            seconds = frame.pts * frame.time_base if known else frame.index * self.frame_s
            pts = round(seconds / self.time_base)
        if self.last is not None and pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts


def inpaint_live(
    inpainter: Inpainter,
    frames: Iterable,
    masks: np.ndarray | Iterator[np.ndarray],
    writer,
    *,
    realtime: bool,
    fps: Fraction | float | None = None,
    max_delay: float = DEFAULT_MAX_DELAY,
    capacity: int = DEFAULT_CAPACITY,
    stop: threading.Event | None = None,
    on_write: Callable[[LatencyStats, Capture], None] | None = None,
) -> LiveResult:
    """Inpaints ``frames`` (a live source's TimedFrames, or plain (H, W, 3) arrays at
    ``fps``) where ``masks`` says and writes each frame, with its timestamp, to the
    entered ``writer`` (``write(frame, pts)``; its ``time_base`` is the pts' unit).

    ``masks``: one (H, W) bool mask for every frame, or an iterator of per-frame masks
    (read beside the frames, so a dropped frame drops its mask). Reading runs on a thread
    of its own (``Capture``): with ``realtime``, frames are dropped to keep within
    ``max_delay`` seconds of the input. The run ends when the source ends or ``stop`` is
    set; the frames then in the pipeline are still written. ``on_write(stats, capture)``
    follows each frame written.
    """
    static = isinstance(masks, np.ndarray)
    capture = Capture(
        timed(frames, fps),
        None if static else iter(masks),
        realtime=realtime,
        capacity=capacity,
        max_delay=max_delay,
    )
    stats = LatencyStats()
    timestamps = _Timestamps(getattr(writer, "time_base", None), fps)
    pending: deque[TimedFrame] = deque()  # frames handed to the pipeline, not yet written
    holes: list[np.ndarray] = []  # the mask of the frame just handed over

    def feed() -> Iterator[np.ndarray]:
        while (pair := capture.get(stop)) is not None:
            frame, hole = pair
            pending.append(frame)
            if not static:
                holes.append(hole)
            yield frame.rgb

    def per_frame_holes() -> Iterator[np.ndarray]:
        while holes:
            yield holes.pop()

    capture.start()
    try:
        for output in inpainter.stream(feed(), masks if static else per_frame_holes()):
            frame = pending.popleft()
            writer.write(output, timestamps(frame))
            stats.wrote(frame.captured, frame.index, capture.read)
            if on_write is not None:
                on_write(stats, capture)
    finally:
        capture.close()
    stopped = stop is not None and stop.is_set()
    ending = "stopped" if stopped else capture.ending or "the source failed"
    error = None if stopped else capture.error
    return LiveResult(capture.read, stats.written, capture.dropped, ending, error, stats)
