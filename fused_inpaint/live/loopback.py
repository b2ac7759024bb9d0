"""A synthetic live source on this machine: a generated clip sent over the loopback address
at its real frame rate, for the live tests and benchmark.

  python -m fused_inpaint.live.loopback URL [--size WxH] [--frames N] [--fps F] [--lossless]

URL: udp://127.0.0.1:PORT (MPEG-TS) or tcp://127.0.0.1:PORT (the receiver listens, with
``?listen=1``; the sender connects as soon as it does). Only loopback hosts are accepted.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urlsplit

import av
import numpy as np

from fused_inpaint import demo

PERIOD = 100  # generated frames, played forth and back so that the motion stays smooth
CONNECT_RETRY_S = 0.05


def clip_frames(height: int, width: int, count: int) -> Iterator[np.ndarray]:
    """``count`` frames (H, W, 3) uint8 of ``demo.generated_clip`` (shapes over a panning
    texture), ``PERIOD`` distinct ones played forth and back."""
    frames = demo.generated_clip(min(count, PERIOD), width).frames
    if frames.shape[1] < height:
        frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, 0), (0, 0)), "edge")
    frames = frames[:, :height]
    cycle = np.concatenate([frames, frames[-2:0:-1]]) if len(frames) > 2 else frames
    for t in range(count):
        yield cycle[t % len(cycle)]


def check_loopback(url: str) -> None:
    """Refuses a URL whose host is not a loopback address."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{url}: the loopback sender sends to 127.0.0.0/8 or ::1 only")


def _open(url: str, format: str, deadline: float):
    """The output container. Over TCP the receiver listens and may not do so yet: the
    connection is retried until ``deadline``, then FFmpeg writes to the socket."""
    parts = urlsplit(url)
    if parts.scheme != "tcp":
        return av.open(url, "w", format=format), None
    while True:
        try:
            connection = socket.create_connection((parts.hostname, parts.port), timeout=1)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(CONNECT_RETRY_S)
    # Each packet leaves as it is made, not when FFmpeg's buffer or a Matroska cluster is
    # full: a frame a cluster, as a live Matroska sender does.
    output = connection.makefile("wb", buffering=0)
    options = {"flush_packets": "1", "live": "1", "cluster_time_limit": "0"}
    options["cluster_size_limit"] = "0"
    return av.open(output, "w", format=format, options=options), connection


def send(
    url: str,
    frames: Iterator[np.ndarray],
    fps: float = 25,
    lossless: bool = False,
    connect_timeout: float = 10,
) -> int:
    """Sends ``frames`` (H, W, 3) uint8 to ``url`` at ``fps`` frames a second of real time,
    timestamped 0, 1, 2, ... frames: MPEG-TS with H.264, or with ``lossless`` Matroska with
    FFV1 in RGB (decoded exactly as sent). Returns the number of frames sent."""
    check_loopback(url)
    deadline = time.monotonic() + connect_timeout
    container, connection = _open(url, "matroska" if lossless else "mpegts", deadline)
    rate = Fraction(fps).limit_denominator(1001)
    sent, stream, start = 0, None, time.monotonic()
    try:
        for frame in frames:
            if stream is None:
                stream = container.add_stream("ffv1" if lossless else "libx264", rate=rate)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "bgr0" if lossless else "yuv420p"
                if not lossless:
                    stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
            video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video.pts = sent
            for packet in stream.encode(video):
                container.mux(packet)
            sent += 1
            time.sleep(max(0.0, start + sent / float(rate) - time.monotonic()))
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
        if connection is not None:
            connection.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--size", default="432x240", help="WxH (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--fps", type=float, default=25)
    parser.add_argument("--lossless", action="store_true", help="FFV1 in Matroska")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    frames = clip_frames(height, width, args.frames)
    sent = send(args.url, frames, args.fps, args.lossless)
    print(f"sent {sent} frames to {args.url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
