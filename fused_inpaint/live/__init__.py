"""Live video in and out: a camera or a network stream inpainted as it arrives.

``inpaint_live`` reads a live source (``fused_inpaint.io.LiveReader``) on a thread of its
own (``Capture``, a small bounded queue that drops whole frames, oldest first, to keep
within a set delay when asked to), runs the frames through ``Inpainter.stream`` and writes
each one with its source timestamp, counting the latency from capture to write
(``LatencyStats``).
"""

from fused_inpaint.live.capture import DEFAULT_CAPACITY, DEFAULT_MAX_DELAY, Capture
from fused_inpaint.live.runner import LiveResult, inpaint_live, timed
from fused_inpaint.live.stats import LatencyStats

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_DELAY",
    "Capture",
    "LatencyStats",
    "LiveResult",
    "inpaint_live",
    "timed",
]
