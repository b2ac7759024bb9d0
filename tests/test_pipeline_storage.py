"""What the pipeline holds: frames once as uint8, flows in float16, states on the hole's box,
and nothing that grows with the clip."""

from __future__ import annotations

import gc
import os
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_pipeline import ExactFlow, inpainter, make_clip, translating

from fused_inpaint.data import dilate
from fused_inpaint.ops import propagation_gather
from fused_inpaint.pipeline import FrameInput, flow, propagation
from fused_inpaint.pipeline.flow import FlowPair, window
from fused_inpaint.pipeline.propagation import (
    PAIRS_PER_THREAD,
    FrameRing,
    Propagation,
    Schedule,
    State,
)


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (3, 20, 31), (40, 50)])
@pytest.mark.parametrize("pixels", [0, 1, 4])
def test_dilate_is_a_square_max(shape, pixels):
    holes = torch.rand(shape, generator=torch.Generator().manual_seed(pixels)) > 0.97
    side = 2 * pixels + 1
    square = F.max_pool2d(holes.reshape(-1, 1, *shape[-2:]).float(), side, 1, pixels)
    assert torch.equal(dilate(holes, pixels), square.reshape(shape) > 0)


@pytest.mark.parametrize(
    "options", [dict(mode="offline", chunk=6, overlap=2), dict(mode="stream"), dict(mode="online")]
)
def test_what_is_held_does_not_grow_with_the_clip(options):
    """However long the stream, the frames and flows alive stay within the schedule's
    capacity, and the same after 80 frames as after 240."""
    frames, masks = make_clip(8, 16, 16)
    model = inpainter(max_age=3, **options)
    length, alive = 240, []
    stream = model.stream(
        (frames[i % 8] for i in range(length)), (masks[i % 8] for i in range(length))
    )
    for index, _ in enumerate(stream):
        if index % 80 == 79:
            gc.collect()
            kinds = [type(o) for o in gc.get_objects()]  # types only: no object kept alive
            alive.append((kinds.count(FrameInput), kinds.count(FlowPair)))
    assert index == length - 1
    s = model.schedule
    assert max(frames for frames, _ in alive) <= s.capacity, alive
    assert max(pairs for _, pairs in alive) <= s.block + s.lookahead, alive
    assert alive[-1] <= alive[0], alive


@pytest.mark.parametrize("stop", ["end", "break"])
def test_a_stream_frees_its_run_before_giving_memory_back(monkeypatch, stop):
    """When a stream ends (or its caller stops reading it), its frames and states are
    freed before malloc's free memory goes back to the system: a server running one job
    after another holds no more between them than it uses."""
    from fused_inpaint.pipeline import inpainter as inpainter_module

    frames, masks = make_clip(8, 16, 16)
    rings, checked = [], []
    make_ring = FrameRing.__init__

    def recording(self, like):
        make_ring(self, like)
        rings.append(weakref.ref(self))

    monkeypatch.setattr(FrameRing, "__init__", recording)
    monkeypatch.setattr(
        inpainter_module, "trim_freed_memory", lambda: checked.append([r() for r in rings])
    )
    stream = inpainter(mode="stream").stream(frames, masks)
    if stop == "end":
        assert len(list(stream)) == 8
    else:
        next(stream)
        stream.close()
    assert checked == [[None]]


class SlowFlow(ExactFlow):
    """``ExactFlow`` whose estimates come from one thread, a few ms each (like DIS), and
    which counts, at each pair asked for, the estimates handed out and not yet taken."""

    threads = 1

    def __init__(self, forward, backward):
        super().__init__(forward, backward)
        self._pool = ThreadPoolExecutor(self.threads)
        self.given = self.taken = 0
        self.waiting = []

    def pair(self, a, b):
        self.waiting.append(self.given - self.taken)
        estimate = super().pair(a, b).result()
        self.given += 1
        future = TakenFuture(self)
        self._pool.submit(lambda: time.sleep(0.003) or future.set_result(estimate))
        return future


class TakenFuture(Future):
    def __init__(self, source: SlowFlow):
        super().__init__()
        self.source = source

    def result(self, timeout=None):
        self.source.taken += 1
        return super().result(timeout)


def test_estimates_wait_for_completion_a_few_at_a_time():
    """Frames read faster than their flow comes do not pile up raw estimates (two float32
    flows of the whole frame each, 2 GB a chunk at 1080p): at most PAIRS_PER_THREAD per
    thread of the source wait uncompleted, and the output is the same."""
    length, h, w = 30, 16, 24
    frames, forward, backward = translating(length, h, w, 1)
    masks = np.zeros((length, h, w), bool)
    masks[:, 4:11, 6:14] = True
    schedule = Schedule(block=16, lookahead=8, max_age=30)
    inputs = inpainter()._inputs
    source = SlowFlow(forward, backward)
    slow = list(Propagation(source, schedule).run(inputs(frames, masks)))
    exact = list(Propagation(ExactFlow(forward, backward), schedule).run(inputs(frames, masks)))
    assert max(source.waiting) <= PAIRS_PER_THREAD * SlowFlow.threads, source.waiting
    assert all(torch.equal(x.image(), y.image()) for x, y in zip(slow, exact, strict=True))


def test_memory_grows_with_the_frames_read():
    """A reach far beyond the clip holds only the frames there are; a schedule whose
    frames cannot fit in the memory there is stops with one line naming its option."""
    frames, masks = make_clip(6, 16, 24)
    near = inpainter(mode="offline", max_age=30)(frames, masks)
    assert np.array_equal(inpainter(mode="offline", max_age=10**6)(frames, masks), near)
    inputs = inpainter()._inputs
    schedule = Schedule(block=40, lookahead=20, max_age=30, ahead_option="chunk")
    run = Propagation(ExactFlow(*translating(6, 16, 24, 1)[1:]), schedule)
    run.memory = schedule.held_bytes(16, 24, ahead=3, behind=0, gpu=False, estimates=2)
    assert run.in_flight == 2  # the estimates ExactFlow's one thread may have out
    many = ExactFlow(*translating(6, 16, 24, 1)[1:])
    many.threads = 10**9  # no more at once than there are CPUs
    assert Propagation(many, schedule).in_flight == PAIRS_PER_THREAD * (os.cpu_count() or 1)
    read = []
    with pytest.raises(ValueError, match=r"^chunk needs .* at 24x16, more than .*: lower chunk$"):
        list(run.run(inputs((read.append(i) or f for i, f in enumerate(frames)), masks)))
    assert len(read) == 4  # the fourth frame did not fit


@pytest.mark.parametrize("pass_bytes", [None, 3 * 13 * 12 * 20])
def test_gather_from_uint8_frames_is_exact(monkeypatch, pass_bytes):
    """The ring reads uint8 frames through float32 copies of the taps the states read in
    each frame, all frames at once or (``pass_bytes``: three whole frames) in passes: the
    values are those propagation_gather reads from the same frames held in float32,
    positions near and beyond the edges, NaN and infinite ones included; what the copies
    leave out is never read (the buffers hold NaN and holes there)."""
    if pass_bytes:
        monkeypatch.setattr(propagation, "GATHER_BYTES", pass_bytes)
    length, h, w = 7, 12, 20
    frames, masks = make_clip(length, h, w)
    inputs = list(inpainter()._inputs(frames, masks))
    ring = FrameRing(inputs[0])
    for index, frame in enumerate(inputs):
        ring.put(index, frame)
    generator = torch.Generator().manual_seed(0)
    source = torch.randint(-1, length, (1, 1, h, w), generator=generator, dtype=torch.int32)
    spread = torch.tensor([w + 3, h + 3])[:, None, None]
    pos = torch.rand(1, 2, h, w, generator=generator) * spread - 1.5
    pos[0, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    near = ring.grid + torch.rand(1, 2, h, w, generator=generator) * 5 - 2.5  # a small region
    states = [
        State(source, pos),
        State(source.flip(-1).contiguous(), pos.flip(-2).contiguous()),
        State(source, near),
        # Each frame read in a band of columns of its own: a small part of the region.
        State((torch.arange(w) * length // w).int().expand(1, 1, h, w).contiguous(), near),
    ]
    stack = torch.stack([f.image[0].float() for f in inputs])[None]
    holes = torch.stack([f.hole_t[0] for f in inputs])[None]
    for box in [(0, 4, 0, 5), (2, 10, 3, 17), (5, 8, 9, 13), (0, h, 0, w)]:
        on_box = [State(x.frame[window(box)], x.pos[window(box)]) for x in states]
        ring._values.fill_(float("nan"))
        ring._holes.fill_(1)
        for state, (image, valid) in zip(states, ring.gather(on_box, box), strict=True):
            expected, found = propagation_gather(stack, holes, state.frame, state.pos)
            assert torch.equal(valid, found[window(box)])
            assert torch.equal(image, expected[window(box)])


def test_float16_flows_change_the_output_by_at_most_one_level():
    """Flows kept in float16 instead of float32 (a sub-pixel motion, so that rounding
    matters): hole pixels differ by at most one level, and at most 1% of them at all."""
    length, h, w = 10, 24, 40
    frames, forward, backward = translating(length, h, w, 2)
    scale = torch.linspace(0.9, 1.1, w)  # a motion of 1.8 to 2.2 pixels a frame
    forward, backward = forward * scale, backward * scale
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 6:18, 12:26] = True
    outputs = []
    for dtype in (torch.float16, torch.float32):
        flow.FLOW_DTYPE = dtype
        try:
            model = inpainter(flow=ExactFlow(forward, backward), chunk=6, overlap=2)
            outputs.append(model(frames, masks).astype(int))
        finally:
            flow.FLOW_DTYPE = torch.float16
    difference = np.abs(outputs[0] - outputs[1])[masks]
    assert difference.max() <= 1
    assert (difference > 0).mean() <= 0.01
