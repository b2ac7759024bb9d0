"""Capture: a live source read on a thread of its own into a small bounded queue, so that a
slow step never stalls the reading, with the drop policy that keeps the output in time."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from fused_inpaint.io import LiveTimeout, TimedFrame

DEFAULT_CAPACITY = 16  # frames queued at most (realtime: the oldest go first)
DEFAULT_MAX_DELAY = 0.2  # seconds a frame may wait for the pipeline in realtime mode
POLL_S = 0.1  # how often a waiting consumer looks at its stop event
Pair = tuple[TimedFrame, "np.ndarray | None"]  # a frame and its mask (None: a static one)


class SourceEnded(Exception):
    """The source ended as a stream ends (end of file, a sender gone silent): not an error."""


class Capture:
    """Reads ``frames`` (TimedFrame) and their ``masks`` ((H, W) bool, one per frame; None
    for a static mask) on a thread into a queue of at most ``capacity`` pairs.

    ``realtime``: the output keeps within a set delay of the input: when the queue is full,
    or its oldest frame has waited more than ``max_delay`` seconds, whole frames are
    dropped, oldest first, never the newest (``dropped`` counts them). Otherwise every
    frame is kept and the reading waits for room. ``read`` counts the frames read; when
    the source is done, ``ending`` says why and ``error`` holds what failed, if anything.
    """

    def __init__(
        self,
        frames: Iterable[TimedFrame],
        masks: Iterator[np.ndarray] | None = None,
        *,
        realtime: bool,
        capacity: int = DEFAULT_CAPACITY,
        max_delay: float = DEFAULT_MAX_DELAY,
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if not max_delay > 0:
            raise ValueError(f"max_delay must be > 0 seconds, got {max_delay}")
        self.realtime, self.capacity, self.max_delay = realtime, capacity, max_delay
        self.read = self.dropped = 0
        self.ending: str | None = None
        self.error: BaseException | None = None
        self._frames, self._masks = frames, masks
        self._queue: deque[Pair] = deque()
        self._changed = threading.Condition()
        self._closing = False
        # A daemon: a source blocked in a read lets the process end; it sees ``close`` at
        # its next frame or timeout.
        self._thread = threading.Thread(target=self._read_all, name="capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _read_all(self) -> None:
        try:
            for frame in self._frames:
                mask = None if self._masks is None else next(self._masks, None)
                if self._masks is not None and mask is None:
                    raise SourceEnded("the mask stream ended")
                if not self._put(frame, mask):
                    return
            raise SourceEnded("the input ended")
        except (SourceEnded, LiveTimeout) as ended:
            self._finish(str(ended), None)
        except BaseException as error:  # handed to the consumer, which raises it
            self._finish(None, error)

    def _put(self, frame: TimedFrame, mask: np.ndarray | None) -> bool:
        """Queues one pair; False when closing."""
        with self._changed:
            while len(self._queue) >= self.capacity and not self._closing:
                if self.realtime:
                    self._queue.popleft()
                    self.dropped += 1
                else:
                    self._changed.wait()
            if self._closing:
                return False
            self._queue.append((frame, mask))
            self.read += 1
            self._changed.notify_all()
        return True

    def _finish(self, ending: str | None, error: BaseException | None) -> None:
        with self._changed:
            self.ending, self.error = ending, error
            self._closing = True
            self._changed.notify_all()

    def get(self, stop: threading.Event | None = None) -> Pair | None:
        """The next (frame, mask), or None once the source has ended (or ``stop`` is set)
        and the queue is empty. In realtime mode frames that waited too long go first."""
        with self._changed:
            while stop is None or not stop.is_set():
                if self._queue:
                    break
                if self._closing:
                    return None
                self._changed.wait(POLL_S)
            else:
                return None
            if self.realtime:
                deadline = time.monotonic() - self.max_delay
                while len(self._queue) > 1 and self._queue[0][0].captured < deadline:
                    self._queue.popleft()
                    self.dropped += 1
            pair = self._queue.popleft()
            self._changed.notify_all()
            return pair

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.get, None)

    def close(self, wait_s: float = 1.0) -> None:
        """Stops reading: the thread ends at its next frame (waited for up to ``wait_s``);
        the frames still queued count as dropped."""
        with self._changed:
            self._closing = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(wait_s)
