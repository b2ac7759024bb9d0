"""Live runs on the loopback address: a sender process streams a generated clip at its real
frame rate (``fused_inpaint.live.loopback``) and ``fused-inpaint run`` receives it.

Every address here is 127.0.0.1; every process is bounded by a timeout.
"""

from __future__ import annotations

import itertools
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fused_inpaint import io
from fused_inpaint.live import loopback
from fused_inpaint.live.loopback import clip_frames

pytestmark = pytest.mark.live

HEIGHT, WIDTH, FPS = 72, 128, 25
RUN = [sys.executable, "-m", "fused_inpaint.cli", "run"]
FAST = ["--dis-preset", "ultrafast", "--threads", "1"]
WAIT_S = 60  # the longest any process here may take


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mask(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A static mask image and its (H, W) bool hole: a box in the middle."""
    hole = np.zeros((HEIGHT, WIDTH), dtype=bool)
    hole[24:48, 40:80] = True
    path = tmp_path_factory.mktemp("mask") / "mask.png"
    Image.fromarray(hole.astype(np.uint8) * 255).save(path)
    return path, hole


class Receiver:
    """``fused-inpaint run`` in a process of its own; its stderr is collected by a thread,
    and ``wait_opening()`` returns once it opens its input."""

    def __init__(self, *args, stdout=None):
        self.process = subprocess.Popen(
            [*RUN, *map(str, args)], stderr=subprocess.PIPE, stdout=stdout, text=False
        )
        self.lines: list[str] = []
        self.arrived: list[float] = []  # when each line came, time.monotonic()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self.arrived.append(time.monotonic())
                self._changed.notify_all()

    def wait_opening(self, what: str = "", settle_s: float = 0.5) -> None:
        """Waits for the line saying that ``what`` (by default anything) opens, then
        ``settle_s`` for the open that follows it to bind its socket."""
        start = f"fused-inpaint: opening {what}"
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(line.startswith(start) for line in self.lines), WAIT_S
            )
        assert found, self.stderr()
        time.sleep(settle_s)

    def finish(self) -> int:
        code = self.process.wait(WAIT_S)
        self._reader.join(5)
        assert "Traceback" not in self.stderr(), self.stderr()
        return code

    def stderr(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> dict[str, int]:
        """read, wrote, dropped and the latency figures of the end-of-run line."""
        text = self.stderr()
        counts = re.search(r"read (\d+) frames, wrote (\d+), dropped (\d+)", text)
        assert counts, text
        figures = dict(zip(("read", "wrote", "dropped"), map(int, counts.groups()), strict=True))
        latency = re.search(r"p95 (\d+) ms / (\d+) frames", text)
        if latency:
            figures["p95_ms"], figures["p95_frames"] = map(int, latency.groups())
        return figures


def send(url: str, frames: int) -> subprocess.Popen:
    """A sender process: ``frames`` frames of the generated clip to ``url`` at FPS."""
    command = [sys.executable, "-m", "fused_inpaint.live.loopback", url]
    size = ["--size", f"{WIDTH}x{HEIGHT}", "--frames", str(frames), "--fps", str(FPS)]
    return subprocess.Popen([*command, *size])


class SenderThread(threading.Thread):
    """A sender with its frames made beforehand, in this process, so that it starts
    sending at once, however loaded the machine: a receiver, which waits at most its
    --timeout, sees every frame. ``frames``: a count of the generated clip's frames (of
    ``size``), or the frames themselves. ``stop`` ends it early."""

    def __init__(self, url: str, frames, lossless: bool = False, size=(HEIGHT, WIDTH)):
        super().__init__(daemon=True)
        self.url, self.lossless, self.sent = url, lossless, None
        self.frames = list(clip_frames(*size, frames)) if isinstance(frames, int) else frames
        self.stop = threading.Event()

    def run(self) -> None:
        frames = itertools.takewhile(lambda _: not self.stop.is_set(), self.frames)
        self.sent = loopback.send(self.url, frames, FPS, self.lossless)


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return [frame for frame in container.decode(video=0)]


@pytest.mark.parametrize("mode", ["online", "stream"])
def test_tcp_lossless_every_frame_comes_out_or_is_counted_dropped(mask, tmp_path, mode):
    path, hole = mask
    port, sent = free_port(socket.SOCK_STREAM), 40
    out = tmp_path / "frames"
    url = f"tcp://127.0.0.1:{port}?listen=1"
    receiver = Receiver(url, "--mask", path, "-o", out, "--mode", mode, *FAST)
    sender = SenderThread(f"tcp://127.0.0.1:{port}", sent, lossless=True)
    receiver.wait_opening()
    sender.start()
    assert receiver.finish() == 0, receiver.stderr()
    sender.join(WAIT_S)
    assert sender.sent == sent
    assert "the input ended" in receiver.stderr()
    figures = receiver.summary()
    outputs = read_pngs(out)
    assert figures["read"] == sent and figures["wrote"] == len(outputs)
    assert len(outputs) + figures["dropped"] == sent
    # Each output is a sent frame, exactly outside the mask (FFV1 is lossless), in order.
    originals = list(clip_frames(HEIGHT, WIDTH, sent))
    position = -1
    for output in outputs:
        matches = [
            t for t in range(position + 1, sent)
            if np.array_equal(output[~hole], originals[t][~hole])
        ]  # fmt: skip
        assert matches, "an output frame is no sent frame outside the mask, or out of order"
        position = matches[0]


def test_udp_mpegts_keeps_the_source_timestamps(mask, tmp_path):
    path, _ = mask
    port, sent = free_port(socket.SOCK_DGRAM), 40
    out = tmp_path / "out.mkv"
    url = f"udp://127.0.0.1:{port}"
    receiver = Receiver(url, "--mask", path, "-o", out, "--mode", "online", "--timeout", "2", *FAST)
    sender = SenderThread(url, sent)
    receiver.wait_opening()
    sender.start()
    assert receiver.finish() == 0, receiver.stderr()
    sender.join(WAIT_S)
    assert sender.sent == sent
    assert "no frame from udp://" in receiver.stderr()  # UDP has no end: silence ends it
    figures = receiver.summary()
    frames = decoded(out)
    assert figures["read"] == sent and len(frames) == figures["wrote"] == sent - figures["dropped"]
    # The sender stamps frame t at t / 25 s: each output frame keeps its input's time, so
    # a dropped frame leaves a gap rather than shifting the rest.
    ticks = [frame.time * FPS for frame in frames]
    assert all(abs(tick - round(tick)) < 0.05 for tick in ticks), ticks
    assert all(b > a for a, b in zip(ticks, ticks[1:], strict=False)), ticks
    assert frames[0].width == WIDTH and frames[0].height == HEIGHT


def test_a_sender_killed_mid_stream_ends_the_run_with_a_finalised_file(mask, tmp_path):
    path, _ = mask
    port = free_port(socket.SOCK_STREAM)
    out = tmp_path / "out.mp4"
    url = f"tcp://127.0.0.1:{port}?listen=1"
    # A process, to be killed; its start (Python, the clip) may take long on a busy machine.
    receiver = Receiver(url, "--mask", path, "-o", out, "--timeout", str(WAIT_S), *FAST)
    receiver.wait_opening()
    sender = send(f"tcp://127.0.0.1:{port}", 20 * FPS)
    deadline = time.monotonic() + WAIT_S
    while not io.leftover_partials(out) and time.monotonic() < deadline:
        time.sleep(0.05)  # the source is open, so is the output
    time.sleep(2)
    sender.kill()  # gone mid-stream, in the middle of a packet maybe
    sender.wait(WAIT_S)
    assert receiver.finish() == 0, receiver.stderr()
    assert "the input ended" in receiver.stderr()
    written = receiver.summary()["wrote"]
    assert written > 0 and len(decoded(out)) == written  # playable to its last frame
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_an_address_nobody_sends_to_fails_within_the_timeout(mask, tmp_path):
    path, _ = mask
    url = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    receiver = Receiver(url, "--mask", path, "-o", tmp_path / "out.mkv", "--timeout", "1")
    assert receiver.finish() == 1
    errors = [line for line in receiver.lines if line.startswith("fused-inpaint: error: ")]
    assert errors == [f"fused-inpaint: error: cannot open {url}: nothing came in 1 s"]
    opening, failed = (receiver.arrived[receiver.lines.index(line)] for line in
                       (receiver.lines[0], errors[0]))  # fmt: skip
    assert receiver.lines[0].startswith("fused-inpaint: opening ")
    assert failed - opening < 1 + 1  # the timeout, and a second of a busy machine
    assert list(tmp_path.iterdir()) == []


def test_standard_output_into_a_reading_process(mask, tmp_path):
    path, hole = mask
    clip = tmp_path / "clip.mkv"
    originals = list(clip_frames(HEIGHT, WIDTH, 12))
    with io.VideoWriter(clip, FPS) as writer:
        for frame in originals:
            writer.write(frame)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import av, sys; c = av.open(sys.stdin.buffer);"
         "print(sum(1 for f in c.decode(video=0) if (f.width, f.height) == (128, 72)))"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    receiver = Receiver(clip, "--mask", path, "-o", "-", "--mode", "online", *FAST,
                        stdout=reader.stdin)  # fmt: skip
    assert receiver.finish() == 0, receiver.stderr()
    reader.stdin.close()
    count = reader.stdout.read()
    assert reader.wait(WAIT_S) == 0 and int(count) == len(originals)


def test_sigterm_finalises_the_output_of_a_live_run(mask, tmp_path):
    path, _ = mask
    out = tmp_path / "out.mkv"
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},realtime"
    receiver = Receiver(source, "--input-format", "lavfi", "--mask", path, "-o", out, *FAST)
    receiver.wait_opening()
    time.sleep(2)
    receiver.process.send_signal(signal.SIGTERM)
    assert receiver.finish() == 130, receiver.stderr()
    assert "fused-inpaint: stopped; wrote" in receiver.stderr()
    written = receiver.summary()["wrote"]
    assert written > 0 and len(decoded(out)) == written


def test_offline_mode_on_a_live_input_names_the_live_modes(mask, tmp_path):
    path, _ = mask
    url = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    receiver = Receiver(url, "--mask", path, "-o", tmp_path / "out", "--mode", "offline")
    assert receiver.finish() == 1
    assert len(receiver.lines) == 1 and "--mode stream" in receiver.lines[0], receiver.lines
    assert "--mode online" in receiver.lines[0]


def test_a_mask_stream_of_another_size_is_refused(mask, tmp_path):
    path, _ = mask
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"
    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://127.0.0.1:{port}"
    receiver = Receiver(source, "--input-format", "lavfi", "--mask", url, "-o", tmp_path / "o")
    sender = SenderThread(url, 10 * FPS, size=(36, 64))
    receiver.wait_opening(f"mask {url}")
    sender.start()
    assert receiver.finish() == 1
    sender.stop.set()
    sender.join(WAIT_S)
    expected = f"mask {url} is 64x36 but the frames of {source} are {WIDTH}x{HEIGHT}"
    assert receiver.lines[-1] == f"fused-inpaint: error: {expected}", receiver.lines


def test_a_mask_stream_masks_a_live_input_frame_by_frame(mask, tmp_path):
    _, hole = mask
    count = 30
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={count / FPS}"
    url = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    white_box = np.repeat(hole[..., None] * np.uint8(255), 3, axis=2)
    sender = SenderThread(url, [white_box] * (count + 2 * FPS))
    out = tmp_path / "frames"
    receiver = Receiver(source, "--input-format", "lavfi", "--mask", url, "-o", out,
                        "--no-realtime", "--mode", "online", *FAST)  # fmt: skip
    receiver.wait_opening(f"mask {url}")
    sender.start()
    assert receiver.finish() == 0, receiver.stderr()
    sender.stop.set()
    sender.join(WAIT_S)
    assert "the input ended" in receiver.stderr()
    with io.LiveReader(source, format="lavfi") as reader:
        inputs = [frame.rgb for frame in reader]
    outputs = read_pngs(out)
    assert len(outputs) == len(inputs) == count
    # The mask came through H.264: exact far from the box's edges, whatever the coding did.
    far = ~io.dilate_hole(hole, 3)
    inside = hole & ~io.dilate_hole(~hole, 3)
    for output, frame in zip(outputs, inputs, strict=True):
        np.testing.assert_array_equal(output[far], frame[far])
    assert any(
        (output[inside] != frame[inside]).any()
        for output, frame in zip(outputs, inputs, strict=True)
    )
