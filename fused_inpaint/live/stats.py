"""Latency and rates of a live run: capture to write, in milliseconds and in frames.

Latencies go into fixed histograms (1 ms and 1 frame bins), so the memory they take stays
the same however long a stream runs, and their median and 95th percentile are exact to the
bin.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

MAX_MS = 60_000  # latencies beyond a minute share the last bin
MAX_FRAMES = 4_096
RECENT = 100  # frames behind the status line's figures


def _percentile(histogram: np.ndarray, q: float) -> int | None:
    total = int(histogram.sum())
    if total == 0:
        return None
    return int(np.searchsorted(np.cumsum(histogram), q * total, side="left"))


class LatencyStats:
    """Counts a live run's frames and times: ``wrote(captured, index, read)`` for each
    frame written, with its capture time (``time.monotonic()``), its position in the
    source and the number of frames read by then."""

    def __init__(self) -> None:
        self.ms = np.zeros(MAX_MS + 1, dtype=np.int64)
        self.frames = np.zeros(MAX_FRAMES + 1, dtype=np.int64)
        self.written = 0
        self.first_capture: float | None = None
        self.last_capture: float | None = None
        self.first_write: float | None = None
        self.last_write: float | None = None
        self.first_index = self.last_index = -1
        self.recent_ms: deque[float] = deque(maxlen=RECENT)

    def wrote(self, captured: float, index: int, read: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        latency_ms = (now - captured) * 1e3
        self.ms[min(int(latency_ms), MAX_MS)] += 1
        self.frames[min(max(read - 1 - index, 0), MAX_FRAMES)] += 1
        self.recent_ms.append(latency_ms)
        self.written += 1
        self.last_index = index
        if self.first_capture is None:
            self.first_capture, self.first_write, self.first_index = captured, now, index
        self.last_capture, self.last_write = captured, now

    def input_fps(self) -> float | None:
        """Frames read per second of the source, from the first written frame's capture to
        the last one's (the frames between included, dropped or not)."""
        if self.written < 2 or self.last_capture <= self.first_capture:
            return None
        return (self.last_index - self.first_index) / (self.last_capture - self.first_capture)

    def output_fps(self) -> float | None:
        """Frames written per second, from the first write to the last."""
        if self.written < 2 or self.last_write <= self.first_write:
            return None
        return (self.written - 1) / (self.last_write - self.first_write)

    def latency_ms(self, q: float) -> int | None:
        return _percentile(self.ms, q)

    def latency_frames(self, q: float) -> int | None:
        return _percentile(self.frames, q)

    def status(self, dropped: int) -> str:
        """The status line: rates, the recent latency and the drops."""
        recent = np.percentile(np.asarray(self.recent_ms), (50, 95)) if self.recent_ms else None
        latency = f"{recent[0]:.0f} ms (p95 {recent[1]:.0f})" if recent is not None else "-"
        return (
            f"in {_rate(self.input_fps())} out {_rate(self.output_fps())} frames/s, "
            f"latency {latency}, dropped {dropped}"
        )

    def summary(self, read: int, dropped: int) -> str:
        """The end-of-run line: counts, rates, latency (median and 95th percentile)."""
        if self.written == 0:
            return f"read {read} frames, wrote none, dropped {dropped}"
        return (
            f"read {read} frames, wrote {self.written}, dropped {dropped}; "
            f"in {_rate(self.input_fps())} out {_rate(self.output_fps())} frames/s; latency "
            f"median {self.latency_ms(0.5)} ms / {self.latency_frames(0.5)} frames, "
            f"p95 {self.latency_ms(0.95)} ms / {self.latency_frames(0.95)} frames"
        )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
