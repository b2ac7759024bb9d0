"""``fused-inpaint run`` on a live input or to a live output: its options and the run.

A live input (a URL, "-", a capture device, or anything with --input-format) is read as it
arrives, in stream mode unless --mode online; a live output (a URL or "-") is sent as it is
made. Messages go to stderr, since standard output may be the video.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
from tqdm import tqdm

from fused_inpaint import io
from fused_inpaint.cli.common import (
    PROG,
    STOP_SIGNALS,
    UsageError,
    check_frame_rate,
    check_output,
    make_inpainter,
    one_line,
    size_text,
)
from fused_inpaint.live import DEFAULT_MAX_DELAY, Capture, LatencyStats, inpaint_live

STATUS_EVERY_S = 0.5
STOPPED_STATUS = 130  # as for a run interrupted before it wrote anything


def positive_seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {text!r}")
    return key, value


def add_options(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group(
        "live input and output",
        "INPUT may also be a URL (rtsp://, rtmp://, udp://, tcp://, srt://, http(s)://), - "
        "(standard input) or a capture device (/dev/video0); it is then read as it arrives, "
        "in stream mode unless --mode online. -o may also be a URL (udp://, tcp://, srt://, "
        "rtmp://) or - (MPEG-TS on standard output). --mask may also be a live mask stream.",
    )
    live.add_argument(
        "--input-format",
        metavar="FMT",
        help="FFmpeg's input format, e.g. v4l2 for a camera, lavfi for a test source",
    )
    live.add_argument(
        "--input-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an FFmpeg option of INPUT, e.g. video_size=640x480, framerate=30, "
        "rtsp_transport=tcp (repeatable)",
    )
    live.add_argument(
        "--timeout",
        type=positive_seconds,
        default=io.DEFAULT_TIMEOUT,
        metavar="S",
        help="a live input that opens, or sends, nothing for S seconds ends the run "
        "(default: %(default)g)",
    )
    live.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        help="drop whole frames, oldest first, to keep the output within --max-delay of the "
        "input (default: on for a live input)",
    )
    live.add_argument(
        "--max-delay",
        type=positive_seconds,
        default=DEFAULT_MAX_DELAY,
        metavar="S",
        help="in realtime mode, the longest a frame waits for the pipeline (default: %(default)g)",
    )
    live.add_argument(
        "--format",
        metavar="FMT",
        help="container of a URL or - output (default: mpegts; flv for rtmp://)",
    )


def is_live(args: argparse.Namespace) -> bool:
    """Whether the run reads or writes anything live."""
    live_input = args.input_format is not None or io.is_live_input(args.input)
    return live_input or io.is_live_input(args.mask) or io.is_live_output(args.output)


def _stream_holes(reader: io.LiveReader, dilate: int) -> Iterator[np.ndarray]:
    """The (H, W) bool holes of a live mask stream: a level above 127 is a hole."""
    for frame in reader:
        yield io.dilate_hole(io.mask_of_frame(frame.rgb), dilate)


def _masks(args: argparse.Namespace, size: tuple[int, int]):
    """One mask for every frame, or an iterator of per-frame masks, of the frames' size."""
    dilate = args.dilate or 0  # None: not given
    if io.is_live_input(args.mask):
        print(f"{PROG}: opening mask {args.mask} (at most {args.timeout:g} s)", file=sys.stderr)
        reader = io.LiveReader(args.mask, timeout=args.timeout)
        mask_size, holes = reader.size, _stream_holes(reader, dilate)
    else:
        masks = io.Masks(args.mask, dilate=dilate, frame_size=size)
        mask_size, holes = masks.size, masks.for_inpainter()
    if mask_size != size:
        raise UsageError(
            f"mask {args.mask} is {size_text(mask_size)} but the frames of {args.input} "
            f"are {size_text(size)}"
        )
    return holes


class _StopOnSignal:
    """Ctrl-C, SIGTERM or SIGHUP sets ``stop``, so that the run ends at the next frame with its
    output finalised; a second one interrupts at once."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, *STOP_SIGNALS):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _status_line():
    """An ``on_write`` that keeps a status line on a terminal's stderr."""
    bar = tqdm(unit=" frames", desc="live", disable=None, leave=False, file=sys.stderr)
    shown = [0.0]

    def on_write(stats: LatencyStats, capture: Capture) -> None:
        bar.update(1)
        now = time.monotonic()
        if now - shown[0] >= STATUS_EVERY_S:
            bar.set_postfix_str(stats.status(capture.dropped))
            shown[0] = now

    return bar, on_write


def command(args: argparse.Namespace) -> int:
    live_input = io.is_live_input(args.input) or args.input_format is not None
    mode = args.mode or ("stream" if live_input else "offline")
    if live_input and mode == "offline":
        raise UsageError(
            "--mode offline needs the whole clip: a live input runs in --mode stream "
            "(LOOKAHEAD frames of latency) or --mode online (none)"
        )
    check_frame_rate(args.fps)
    if io.is_live_output(args.output):
        if args.output == io.STANDARD and sys.stdout.isatty():
            raise UsageError("-o -: standard output is a terminal; pipe it (... -o - | ffplay -)")
    else:
        if args.format is not None:
            raise UsageError("--format is for a URL or - output")
        files = {"INPUT": args.input, "--mask": args.mask}
        check_output(
            args.output, {k: v for k, v in files.items() if not io.is_url(v)}, args.overwrite
        )
    realtime = live_input if args.realtime is None else args.realtime
    # The weights load before the source opens: no frame waits for them.
    inpainter = make_inpainter(args, mode, args.flow)
    if live_input:
        print(f"{PROG}: opening {args.input} (at most {args.timeout:g} s)", file=sys.stderr)
        options = dict(args.input_option)
        source = io.LiveReader(args.input, args.input_format, options, args.timeout)
        time_base = source.time_base
    else:  # frames follow each other at the frame rate
        source, time_base = io.open_frames(args.input), None
    masks = _masks(args, source.size)
    fps = args.fps or source.fps
    writer = io.open_writer(args.output, fps, args.overwrite, time_base, args.format)
    stop = threading.Event()
    bar, on_write = _status_line()
    with _StopOnSignal(stop), writer, bar:
        result = inpaint_live(
            inpainter, source, masks, writer, realtime=realtime, fps=fps,
            max_delay=args.max_delay, stop=stop, on_write=on_write,
        )  # fmt: skip
        if result.written == 0:  # then no output is left behind
            if stop.is_set():
                raise KeyboardInterrupt
            raise result.error or io.MediaError(f"{result.ending} before a frame was written")
    print(
        f"{PROG}: {result.ending}; wrote {result.written} frames to {writer.path}", file=sys.stderr
    )
    print(f"{PROG}: {result.summary()}", file=sys.stderr)
    if result.error is not None:
        print(f"{PROG}: error: {one_line(result.error)}", file=sys.stderr)
        return 1
    return STOPPED_STATUS if stop.is_set() else 0
