"""The live machinery in one process: the capture queue's drop policy, the latency it
keeps, the statistics, and the Python API on a live source (FFmpeg's lavfi test source,
so no network is needed)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from fractions import Fraction

import numpy as np
import pytest

from fused_inpaint import io
from fused_inpaint.live import Capture, LatencyStats, inpaint_live
from fused_inpaint.models import SlimInpaintNet, save_network
from fused_inpaint.pipeline import Inpainter

pytestmark = pytest.mark.live  # paced sources: seconds of real time

FPS = 25
TIME_BASE = Fraction(1, FPS)
# What a frame may take beyond the queue's wait and the stand-in's own work: scheduling on
# a shared 2-core machine.
SLACK_S = 0.15


def paced(count: int, fps: float = FPS):
    """``count`` TimedFrames (4x4) at ``fps`` frames a second of real time, like a camera."""
    start = time.monotonic()
    for index in range(count):
        time.sleep(max(0.0, start + index / fps - time.monotonic()))
        rgb = np.full((4, 4, 3), index % 256, dtype=np.uint8)
        yield io.TimedFrame(rgb, index, index, TIME_BASE, time.monotonic())


def instant(count: int):
    """``count`` TimedFrames read as fast as they come."""
    for index in range(count):
        rgb = np.full((4, 4, 3), index % 256, dtype=np.uint8)
        yield io.TimedFrame(rgb, index, index, TIME_BASE, time.monotonic())


class StandIn:
    """Stands in for an Inpainter: yields each frame once ``latency`` more are read, after
    ``cost_s`` of work, like a pipeline of that latency and speed."""

    def __init__(self, latency: int, cost_s: float):
        self.latency, self.cost_s = latency, cost_s

    def stream(self, frames, masks):
        window = deque()
        for frame in frames:
            window.append(frame)
            if len(window) > self.latency:
                time.sleep(self.cost_s)
                yield window.popleft()
        while window:
            time.sleep(self.cost_s)
            yield window.popleft()


class Collect:
    """A writer that keeps what it is given."""

    time_base = TIME_BASE

    def __init__(self):
        self.frames, self.pts = [], []

    def write(self, frame, pts=None):
        self.frames.append(frame)
        self.pts.append(pts)


HOLE = np.zeros((4, 4), dtype=bool)


@pytest.mark.parametrize(
    "latency,cost_s,drops",
    [(0, 0.005, False), (8, 0.005, False), (0, 0.1, True), (8, 0.1, True)],
    ids=["online-keeps-up", "stream-keeps-up", "online-behind", "stream-behind"],
)
def test_realtime_keeps_the_latency_to_the_modes_frames_plus_the_set_delay(latency, cost_s, drops):
    count, max_delay = 50, 0.2
    writer = Collect()
    pipeline = StandIn(latency, cost_s)
    result = inpaint_live(pipeline, paced(count), HOLE, writer, realtime=True, max_delay=max_delay)
    assert result.read == count and result.ending == "the input ended" and result.error is None
    assert result.written + result.dropped == count
    assert (result.dropped > 0) == drops
    # Timestamps carried through: a dropped frame leaves a gap, never a shift.
    assert writer.pts == [int(frame[0, 0, 0]) for frame in writer.frames]
    assert writer.pts == sorted(set(writer.pts))
    stats = result.stats
    # The frames the pipeline holds come one a frame time apart, or one a work time apart
    # when it is behind; each waited at most max_delay in the queue.
    step_s = max(1 / FPS, cost_s)
    bound_s = latency * step_s + max_delay + cost_s + SLACK_S
    assert stats.latency_ms(0.95) <= 1000 * bound_s, result.summary()
    if not drops:
        assert stats.latency_frames(0.95) <= latency + 1 + SLACK_S * FPS, result.summary()


def test_without_realtime_every_frame_is_kept_and_the_queue_stays_bounded():
    count, capacity = 40, 4
    capture = Capture(instant(count), realtime=False, capacity=capacity).start()
    taken, queued = [], []
    while (pair := capture.get()) is not None:
        taken.append(pair[0].index)
        time.sleep(0.005)  # a slow consumer: the reader waits for room
        queued.append(capture.read - len(taken))
    assert taken == list(range(count)) and capture.dropped == 0
    assert max(queued) <= capacity


def test_realtime_drops_the_oldest_frames_when_the_queue_is_full():
    capture = Capture(instant(30), realtime=True, capacity=5).start()
    capture._thread.join(5)  # everything read before anything is taken
    taken = [frame.index for frame, _ in capture]
    assert taken == [25, 26, 27, 28, 29] and capture.dropped == 25 and capture.read == 30


def test_a_frame_that_waited_too_long_goes_but_never_the_newest():
    capture = Capture(instant(6), realtime=True, capacity=10, max_delay=0.05).start()
    capture._thread.join(5)
    time.sleep(0.1)  # every queued frame is now older than max_delay
    assert capture.get()[0].index == 5 and capture.dropped == 5
    assert capture.get() is None and capture.ending == "the input ended"


def test_a_failing_source_is_handed_to_the_consumer_after_its_frames():
    def failing():
        yield from instant(3)
        raise io.MediaError("cannot decode udp://127.0.0.1:9: broken")

    result = inpaint_live(StandIn(0, 0), failing(), HOLE, Collect(), realtime=False)
    assert result.written == 3 and isinstance(result.error, io.MediaError)


def test_per_frame_masks_stay_with_their_frames_when_frames_are_dropped():
    holes = (np.full((4, 4), index % 2 == 1) for index in itertools.count())
    outputs = []

    class Check(StandIn):
        def stream(self, frames, masks):
            masks = iter(masks)
            for frame in frames:
                hole = next(masks)
                outputs.append((int(frame[0, 0, 0]), bool(hole.all())))
                yield frame

    inpaint_live(Check(0, 0.03), paced(30), holes, Collect(), realtime=True, max_delay=0.01)
    assert all(is_odd == (index % 2 == 1) for index, is_odd in outputs)


def test_stop_ends_the_run_and_the_pipeline_still_writes_what_it_holds():
    stop = threading.Event()
    writer = Collect()

    def on_write(stats, capture):
        if stats.written == 3:
            stop.set()

    result = inpaint_live(
        StandIn(4, 0), paced(100), HOLE, writer, realtime=True, stop=stop, on_write=on_write
    )
    assert result.ending == "stopped" and result.error is None
    assert result.written == 3 + 4  # the four frames the stand-in held, flushed
    assert result.written + result.dropped == result.read


def test_latency_stats_percentiles_and_rates():
    stats = LatencyStats()
    for index in range(100):  # captured every 40 ms, written 10.5..109.5 ms later
        captured = 1000 + index * 0.04
        stats.wrote(captured, index, index + 1 + index % 3, now=captured + (10.5 + index) / 1000)
    assert stats.latency_ms(0.5) == 59 and stats.latency_ms(0.95) == 104
    assert stats.latency_frames(0.5) == 1 and stats.latency_frames(0.95) == 2
    assert stats.input_fps() == pytest.approx(25) and stats.output_fps() == pytest.approx(
        99 / (0.04 * 99 + 0.099)
    )
    assert "dropped 7" in stats.summary(read=107, dropped=7)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_network(SlimInpaintNet(), path)
    return path


def test_a_live_source_goes_through_inpainter_stream_unchanged(weights):
    source = "testsrc2=size=64x48:rate=25"
    with io.LiveReader(source, format="lavfi", timeout=5) as reader:
        assert reader.size == (48, 64) and reader.fps == 25 and reader.count is None
        frames = list(itertools.islice(reader, 6))
    assert [frame.pts for frame in frames] == list(range(6))
    assert all(frame.time_base == Fraction(1, 25) for frame in frames)
    hole = np.zeros((48, 64), dtype=bool)
    hole[16:32, 20:40] = True
    inpainter = Inpainter(weights, device="cpu", mode="online", dis_preset="ultrafast")
    from_timed = list(inpainter.stream(iter(frames), hole))
    from_arrays = list(inpainter.stream([frame.rgb for frame in frames], hole))
    np.testing.assert_array_equal(np.stack(from_timed), np.stack(from_arrays))


def test_an_unopenable_source_names_itself():
    with pytest.raises(io.MediaError, match="cannot open nosuchfilter=1: "):
        io.LiveReader("nosuchfilter=1", format="lavfi", timeout=2)
    with pytest.raises(io.MediaError, match="cannot open x: "):
        io.LiveReader("x", format="no-such-format", timeout=2)


def test_live_names_are_told_from_files(tmp_path):
    assert io.is_live_input("rtsp://127.0.0.1/cam") and io.is_live_input("-")
    assert io.is_live_output("udp://127.0.0.1:1234") and io.is_live_output("-")
    assert not io.is_live_input(tmp_path) and not io.is_live_output(tmp_path / "out.mp4")
    assert not io.is_url("file:///tmp/x.mp4")
    assert io.media_name("udp://127.0.0.1:5000") == "udp://127.0.0.1:5000"
    assert io.media_name("out.mp4") == type(tmp_path)("out.mp4")
    with pytest.raises(io.MediaError, match="no default container for http://"):
        io.open_writer("http://127.0.0.1:8080/live")
    with pytest.raises(io.MediaError, match="container format is for a URL"):
        io.open_writer(tmp_path / "out.mp4", format="mpegts")


def test_closing_a_live_source_while_another_thread_reads_it():
    reader = io.LiveReader("testsrc2=size=64x48:rate=25,realtime", format="lavfi", timeout=5)
    indices = []
    thread = threading.Thread(target=lambda: indices.extend(f.index for f in reader))
    thread.start()
    time.sleep(0.5)
    reader.close()  # waits for the read under way, then the reading thread's loop ends
    thread.join(5)
    assert not thread.is_alive() and indices and indices == list(range(len(indices)))
