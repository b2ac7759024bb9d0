"""Flow-guided propagation: each hole pixel reads a real value from the nearest frame in
time that sees it (FGVC, ProPainter's image propagation).

A forward sweep (frame t from t-1) and a backward sweep (t from t+1) of
``flow_propagate`` carry, for every pixel, the frame it can be read from and where; the
colours are then read once from that frame by ``propagation_gather``, so a value that
travels far is resampled once, not once per hop. Each hole pixel takes the source nearer
in time, the average of both on a tie.

One schedule serves every mode: frames are output in blocks of ``block`` frames, each
block's backward sweep starting ``lookahead`` frames after its last frame (or at the
clip's end), while the forward sweep runs on across blocks. Offline mode is a block of
``chunk - overlap`` frames with ``overlap`` frames of lookahead; streaming is a block of
one frame; online mode has no backward sweep. The frames a sweep may read are those read
and not yet output, and the older ones the forward state still points at: at most
``max_age + block + lookahead + 1``, each held once as it came (uint8); memory grows with
the frames read up to that bound (``Schedule.held_bytes``), never with the video.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from fused_inpaint.ops import flow_propagate, propagation_gather
from fused_inpaint.pipeline import steady
from fused_inpaint.pipeline.flow import (
    Box,
    FlowPair,
    FrameInput,
    grown,
    intersection,
    moved,
    union,
    window,
)
from fused_inpaint.pipeline.seams import blend_seams

# propagation_gather reads float32 frames: the region a frame's states read of each
# frame they point at is converted, as many frames at once as fit in this many bytes (at
# least one whole frame), at GATHER_PIXEL_BYTES a pixel (float32 RGB and a hole byte).
GATHER_BYTES, GATHER_PIXEL_BYTES = 96 * 2**20, 3 * 4 + 1
# Bytes a pixel costs: a frame (uint8 RGB and its bool hole, once on the host and once
# more on a GPU), the completed flows of a pair (2 flows x 2 channels, float16), a
# propagation state (int32 frame, 2 float32 positions), the backward flows the
# temporal completion carries (two at a time: 2 float32 channels and a bool each), and a
# raw estimate (2 float32 flows); and, for each frame the output's steady fill remembers,
# its output, where it was filled and its flow there (6 float16 channels).
FRAME_BYTES, PAIR_BYTES, STATE_BYTES, CARRIED_BYTES, ESTIMATE_BYTES = 4, 8, 12, 18, 16
STEADY_BYTES = 12
# Pairs a flow source's thread may have estimated or be estimating ahead of their
# completion: enough to keep its threads busy while the sweeps run.
PAIRS_PER_THREAD = 2


@dataclass(frozen=True)
class Schedule:
    """When frames come out and how far propagation reaches (see the module docstring)."""

    block: int  # frames output per backward sweep
    lookahead: int  # frames after a block that its backward sweep starts from
    max_age: int  # the farthest a value travels, in frames (drift grows with every hop)
    backward: bool = True  # online mode: the forward sweep only
    alpha: float = 0.01  # fb_validity's test
    beta: float = 0.5
    ahead_option: str = "lookahead"  # the option that sets block + lookahead, for errors
    temporal_flow: bool = False  # flows completed from the frames before too (carried_in)

    @property
    def capacity(self) -> int:
        """Frames held at most: the oldest a forward source may be, to the newest a
        backward sweep starts from."""
        return self.max_age + self.block + self.lookahead + 1

    def held_bytes(
        self, height: int, width: int, ahead: int, behind: int, gpu: bool, estimates: int = 0
    ) -> int:
        """Bytes held with ``ahead`` frames read and not output (at most block +
        lookahead) and ``behind`` older ones still read from (at most max_age + 1): the
        frames, the pairs' flows and the backward states (at most: both are kept on the
        region around the holes), the forward state, the carried flows of the temporal
        flow completion (when on), the gather's float32 copies, ``estimates`` raw flow
        estimates waiting for their completion (two float32 flows each), and what the
        output's steady fill remembers (at most: it is kept on the holes' boxes)."""
        pixels = height * width
        frames = (ahead + behind) * FRAME_BYTES * pixels * (2 if gpu else 1)
        states = (1 + (min(self.block, ahead) if self.backward else 0)) * STATE_BYTES * pixels
        copies = max(GATHER_BYTES, GATHER_PIXEL_BYTES * pixels)
        carried = CARRIED_BYTES * pixels if self.temporal_flow else 0
        raw = estimates * ESTIMATE_BYTES * pixels
        remembered = (steady.FRAMES - 1) * STEADY_BYTES * pixels
        return frames + ahead * PAIR_BYTES * pixels + states + carried + copies + raw + remembered


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside (None: left as they are), the
    caller's setting restored after."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_bytes(device: torch.device) -> int | None:
    """Memory the machine can give now (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def size_text(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


@dataclass
class State:
    """Where each pixel of one frame can read a value: source frame (-1: nowhere) and
    sub-pixel position in it."""

    frame: torch.Tensor  # (1, 1, H, W) int32
    pos: torch.Tensor  # (1, 2, H, W) float32 (x, y)


@dataclass
class Swept:
    """A sweep's state of frame ``index``: ``state`` on the frame's hole ``box`` (both None
    when it has no hole). Every pixel outside the box is known and reads itself: a step
    works on the hole's neighbourhood only, not the frame (at 1080p the frame's states
    were most of a stream's time)."""

    index: int
    box: Box | None
    state: State | None

    def on(self, region: Box, grid: torch.Tensor) -> State:
        """The state on ``region`` of the frame, ``grid`` (1, 2, H, W) its pixels'
        positions."""
        pos = grid[window(region)].clone()
        frame = torch.full_like(pos[:, :1], self.index, dtype=torch.int32)
        overlap = self.box and intersection(self.box, region)
        if overlap:
            into = window(moved(overlap, -region[0], -region[2]))
            out_of = window(moved(overlap, -self.box[0], -self.box[2]))
            frame[into], pos[into] = self.state.frame[out_of], self.state.pos[out_of]
        return State(frame, pos)


@dataclass
class Propagated:
    """A frame after propagation: ``values`` (1, 3, h, w) float32 on its hole's box hold
    the frame's known pixels and the propagated ones there, 0 elsewhere (None without a
    hole); ``reached`` (1, 1, H, W) bool, where the frame holds a value; ``back`` (1, 2, h,
    w) float32, the completed flow on the box to the frame before (None on the first frame
    or without a hole)."""

    frame: FrameInput
    index: int
    values: torch.Tensor | None
    reached: torch.Tensor
    back: torch.Tensor | None = None

    def image(self) -> torch.Tensor:
        """(1, 3, H, W) float32: the frame with ``values`` on its hole's box (made when
        asked: most frames need no more than the box)."""
        image = self.frame.image.float()
        if self.values is not None:
            image[window(self.frame.box)] = self.values
        return image


class FrameRing:
    """The frames the sweeps read from: every frame read and not yet output, and the
    older ones the forward state still points at (at most max_age + 1 of them)."""

    def __init__(self, like: FrameInput):
        _, channels, height, width = like.image.shape
        kw = dict(device=like.image.device)
        self.frames: dict[int, FrameInput] = {}
        # The float32 pixels and the holes of the frames one gather pass reads, on the
        # region it reads: allocated once, at least a whole frame.
        pixels = max(GATHER_BYTES // GATHER_PIXEL_BYTES, height * width)
        self._values = torch.empty(pixels * channels, **kw)
        self._holes = torch.empty(pixels, dtype=torch.uint8, **kw)
        xs = torch.arange(width, dtype=torch.float32, **kw).expand(height, width)
        ys = torch.arange(height, dtype=torch.float32, **kw)[:, None].expand(height, width)
        self.grid = torch.stack([xs, ys])[None]  # (1, 2, H, W)
        # A pair's flows for a step, written where the step reads them (FlowPair.flows).
        self.flows = (torch.zeros_like(self.grid), torch.zeros_like(self.grid))

    def put(self, index: int, frame: FrameInput) -> None:
        self.frames[index] = frame

    def forget(self, before: int, swept: Swept) -> None:
        """Drops the frames older than ``before`` that the forward state ``swept`` does
        not point at: nothing later can, since a sweep only carries what its last state
        holds."""
        used = {swept.index} | set(sources([swept.state.frame] if swept.state else []))
        for old in [k for k in self.frames if k < before and k not in used]:
            del self.frames[old]

    def own(self, index: int, frame: FrameInput) -> Swept:
        """The state of a frame with no neighbour: its known pixels, nothing in its hole."""
        box = frame.box
        if box is None:
            return Swept(index, None, None)
        hole = frame.hole_t[window(box)]
        source = torch.where(hole, -1, index).to(torch.int32)
        return Swept(index, box, State(source, torch.where(hole, 0.0, self.grid[window(box)])))

    def read_boxes(self, states: list[State], box: Box) -> tuple[Box, dict[int, Box]]:
        """(the smallest box that holds ``box`` and every in-frame tap of the positions
        ``states`` (on ``box``) point at, {frame index: the box of the taps read in that
        frame}), for each frame they point at, in order."""
        height, width = self.grid.shape[-2:]
        kw = dict(device=self.grid.device)
        low = min(self.frames)  # every frame a state points at is held
        bins = max(self.frames) - low + 2  # bin 0: nowhere (-1)
        count = torch.zeros(bins, dtype=torch.long, **kw)
        first = torch.full((2, bins), math.inf, **kw)
        last = torch.full((2, bins), -math.inf, **kw)
        for state in states:
            index = state.frame.flatten().long().sub_(low - 1).clamp_min_(0)
            pos = state.pos[0].reshape(2, -1)
            pos = pos.nan_to_num(0.0, posinf=float(max(height, width)), neginf=-1.0)
            count += torch.bincount(index, minlength=bins)
            for axis in range(2):
                first[axis].scatter_reduce_(0, index, pos[axis], "amin")
                last[axis].scatter_reduce_(0, index, pos[axis], "amax")
        used = count[1:].nonzero().flatten()
        sides = torch.tensor([[width - 1], [height - 1]], **kw)
        taps = [  # the first and the last tap along x and y, within the frame
            torch.minimum(ends[:, used + 1].floor().add_(step).clamp_min_(0), sides).int().tolist()
            for ends, step in ((first, 0), (last, 1))
        ]
        (x0s, y0s), (x1s, y1s) = taps
        boxes, region = {}, box
        for k, x0, y0, x1, y1 in zip(used.tolist(), x0s, y0s, x1s, y1s, strict=True):
            boxes[low + k] = (y0, y1 + 1, x0, x1 + 1)
            region = union(region, boxes[low + k])
        return region, boxes

    def gather(self, states: list[State], box: Box) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(image (1, 3, h, w) float32, valid (1, 1, h, w) bool) of each of ``states``
        ((1, ., h, w) on ``box``): the values they point at. The frames are uint8: of each
        frame the states point at, the taps they read there (``read_boxes``) are converted
        to float32, as many consecutive frames a pass as GATHER_BYTES holds, on the region
        that holds every frame's taps, and sampled there (positions in the region exactly
        as in the frame: its edges are the frame's or beyond every tap; what a frame's
        taps do not cover is never read)."""
        region, boxes = self.read_boxes(states, box)
        top, bottom, left, right = region
        height, width = bottom - top, right - left
        inner = moved(box, -top, -left)
        kw = dict(device=self.grid.device)
        origin = torch.tensor([left, top], dtype=torch.float32, **kw).view(1, 2, 1, 1)
        on_region = []
        for state in states:
            frame = torch.full((1, 1, height, width), -1, dtype=torch.int32, **kw)
            pos = torch.zeros(1, 2, height, width, **kw)
            frame[window(inner)] = state.frame
            pos[window(inner)] = state.pos - origin  # exact: origin <= every in-frame tap
            on_region.append((frame, pos))
        out = [
            (
                torch.zeros(1, 3, box[1] - box[0], box[3] - box[2], **kw),
                torch.zeros(1, 1, box[1] - box[0], box[3] - box[2], dtype=torch.bool, **kw),
            )
            for _ in states
        ]
        used = list(boxes)
        count = len(self._holes) // (height * width)
        while used:
            first = used[0]
            span = [k for k in used if k < first + count]
            used = used[len(span) :]
            length = span[-1] - first + 1
            values = self._values[: length * height * width * 3]
            images = values.view(1, length, height, width, 3).permute(0, 1, 4, 2, 3)
            holes = self._holes[: length * height * width].view(1, length, 1, height, width)
            for k in span:
                taps, on = window(boxes[k]), window(moved(boxes[k], -top, -left))
                images[0, k - first][on] = self.frames[k].image[0][taps]
                holes[0, k - first][on] = self.frames[k].hole_t[0][taps]
            for (frame, pos), (image, valid) in zip(on_region, out, strict=True):
                part, found = propagation_gather(images, holes, frame, pos, t0=first)
                image += part[window(inner)]
                valid |= found[window(inner)]
        return out


def sources(frames: list[torch.Tensor]) -> list[int]:
    """The frames that the source-frame tensors ``frames`` point at, in order."""
    if not frames:
        return []
    found = torch.cat([f.flatten() for f in frames])
    # -1 is nowhere: counted from it, a late frame's index would span the whole clip.
    found = found[found >= 0]
    if found.numel() == 0:
        return []
    # Counted rather than sorted (``unique``): the indices span a few frames, and on a CPU
    # counting is about ten times faster.
    low = int(found.min())
    return torch.bincount(found.sub(low).long()).nonzero().flatten().add_(low).tolist()


def nearest(forward: tuple, backward: tuple, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's value from the source nearer in time, both averaged on a tie.

    forward, backward: (source frame (1, 1, h, w) int32, image, valid) of one region of
    one frame. Returns (image, reached)."""
    (frame_f, image_f, valid_f), (frame_b, image_b, valid_b) = forward, backward
    age_f = index - frame_f
    age_b = frame_b - index
    take_f = valid_f & ~(valid_b & (age_b < age_f))
    take_b = valid_b & ~(valid_f & (age_f < age_b))
    weight_f, weight_b = take_f.to(image_f.dtype), take_b.to(image_b.dtype)
    total = weight_f + weight_b
    image = (image_f * weight_f + image_b * weight_b) / total.clamp_min(1)
    return image, take_f | take_b


class Propagation:
    """Runs the sweeps of ``schedule`` over frames, their flows from ``flow_source``.

    ``memory``: bytes the run may hold (default: what the device has available when the
    first frame comes); a schedule that would hold more stops with a ValueError that names
    the option and what it needs. ``seams``: the propagated pixels blended onto the known
    ones in the gradient domain (``seams.blend_seams``). ``idle_threads``: torch's
    intra-op threads during a backward sweep (None: as they are), when every flow it
    reads has been estimated and a flow source on threads of its own has nothing to do
    until the next frame is read. ``exhausted``: whether the frames have all been read
    (from then on, too, the flow source has nothing more to do)."""

    def __init__(
        self,
        flow_source,
        schedule: Schedule,
        memory: int | None = None,
        seams: bool = False,
        idle_threads: int | None = None,
    ):
        self.flow_source, self.schedule, self.memory = flow_source, schedule, memory
        self.seams, self.idle_threads = seams, idle_threads
        self.exhausted = False
        # Estimates out at most, ahead of their completion (see ``run``): threads beyond
        # the CPUs compute no more at once, and each estimate out holds two flows.
        threads = min(getattr(flow_source, "threads", 1), os.cpu_count() or 1)
        self.in_flight = PAIRS_PER_THREAD * max(threads, 1)

    def _step(
        self, frame: FrameInput, index: int, swept: Swept, flows, ahead: bool, grid: torch.Tensor
    ) -> Swept:
        """Frame ``index``'s state from its neighbour's ``swept``; flows: (forward,
        backward) of the pair (index, index + 1) when ``ahead``, else (index - 1, index);
        grid: (1, 2, H, W) the pixels' positions. On the CPU ``flow_propagate`` runs on
        the hole's box grown by as far as its flow reaches, with every tap it reads: there
        it gives what it gives on the whole frame, and outside it every pixel reads
        itself."""
        box = frame.box
        if box is None:
            return Swept(index, None, None)
        forward, backward = flows
        to_neighbour, from_neighbour = (forward, backward) if ahead else (backward, forward)
        height, width = frame.hole.shape
        region = (0, height, 0, width)
        # On a GPU the whole frame costs less than the wait for the reach to be known.
        reach = float(to_neighbour[window(box)].abs().amax()) if grid.is_cpu else math.inf
        if math.isfinite(reach):
            top, bottom, left, right = grown(box, math.ceil(reach) + 2, height, width)
            # At an even origin: positions round half to even, as on the whole frame.
            region = top - top % 2, bottom, left - left % 2, right
        state, s = swept.on(region, grid), self.schedule
        frame_t, pos_t = flow_propagate(
            frame.hole_t[window(region)], to_neighbour[window(region)],
            from_neighbour[window(region)], state.frame, state.pos, t=index,
            alpha=s.alpha, beta=s.beta, max_age=s.max_age,
        )  # fmt: skip
        inner, hole = window(moved(box, -region[0], -region[2])), frame.hole_t[window(box)]
        # Known pixels read themselves: the region's own positions are the region's.
        pos = torch.where(hole, pos_t[inner], grid[window(box)])
        return Swept(index, box, State(frame_t[inner], pos))

    def _backward_states(self, ring: FrameRing, pending: deque, count: int, flows) -> list:
        """The backward sweep from the newest pending frame: the states of the first
        ``count`` pending frames, each on its hole's box (None without a hole)."""
        states = []
        state = None
        if len(pending) > 1:  # the newest pair's estimate comes last: then the source idles
            flows[pending[-2][0]].complete()
        with intra_op_threads(self.idle_threads):
            for i in range(len(pending) - 1, -1, -1):
                index, frame = pending[i]
                if state is None:
                    state = ring.own(index, frame)
                else:
                    pair = flows[index].flows(ring.flows)
                    state = self._step(frame, index, state, pair, ahead=True, grid=ring.grid)
                if i < count:
                    states.append(state.state)
        return states[::-1]

    def _check_memory(self, frame: FrameInput, ahead: int, behind: int, memory: int) -> None:
        """Raises a ValueError naming the option when the schedule's frames so far do not
        fit in ``memory`` bytes."""
        s, (height, width) = self.schedule, frame.hole.shape
        gpu = frame.image.device.type == "cuda"
        held = functools.partial(s.held_bytes, gpu=gpu, estimates=self.in_flight)
        if held(height, width, ahead, behind) <= memory:
            return
        if behind > ahead:
            option, value = "max_age", s.max_age
            need = held(height, width, ahead, s.max_age + 1)
        else:
            option, value = s.ahead_option, None
            need = held(height, width, s.block + s.lookahead, behind)
        setting = f"{option} {value}" if value is not None else option
        raise ValueError(
            f"{setting} needs {size_text(need)} at {width}x{height}, more than the "
            f"{size_text(memory)} available: lower {option}"
        )

    def run(self, frames: Iterable[FrameInput]) -> Iterator[Propagated]:
        """Yields each frame after propagation, in order, at most ``block + lookahead - 1``
        frames after it was read."""
        s = self.schedule
        capacity = s.block + s.lookahead
        source = iter(frames)
        pending: deque[tuple[int, FrameInput]] = deque()  # read, not yet output
        flows: dict[int, FlowPair] = {}  # t -> the flows of the pair (t, t + 1)
        unfinished: deque[FlowPair] = deque()  # pairs whose estimate is not completed
        ring: FrameRing | None = None
        forward: Swept | None = None  # the forward state of the last frame output
        previous: FrameInput | None = None
        last_pair: FlowPair | None = None
        memory: int | None = None
        next_index = 0  # of the next frame read

        def read() -> bool:
            """Reads the next frame and asks for the flows of its pair; False at the end."""
            nonlocal ring, memory, previous, last_pair, next_index
            frame = next(source, None)
            if frame is None:
                self.exhausted = True
                return False
            index, next_index = next_index, next_index + 1
            if ring is None:
                ring = FrameRing(frame)
                memory = self.memory or available_bytes(frame.image.device)
            ring.put(index, frame)
            if memory is not None:
                behind = len(ring.frames) - len(pending) - 1
                self._check_memory(frame, len(pending) + 1, behind, memory)
            if previous is not None:
                needed = FlowPair.needed(previous, frame, s.temporal_flow)
                estimate = self.flow_source.pair(previous, frame) if needed else None
                last_pair = FlowPair(estimate, previous, frame, last_pair, s.temporal_flow)
                flows[index - 1] = last_pair
                unfinished.append(last_pair)
            # Completed in order as they come (float16 on the read box then), and the
            # oldest waited for once ``in_flight`` estimates are out: a raw estimate is
            # two float32 flows of the whole frame, and frames read faster than the flow
            # comes would otherwise pile up a chunk of them (2 GB at 1080p).
            while unfinished and (unfinished[0].ready() or len(unfinished) > self.in_flight):
                unfinished.popleft().complete()
            previous = frame
            pending.append((index, frame))
            return True

        def output(count: int) -> Iterator[Propagated]:
            nonlocal forward
            backward = self._backward_states(ring, pending, count, flows) if s.backward else None
            for k in range(count):
                index, frame = pending.popleft()
                back = None
                if forward is None:
                    forward = ring.own(index, frame)
                else:
                    pair = flows.pop(index - 1).flows(ring.flows)
                    forward = self._step(frame, index, forward, pair, ahead=False, grid=ring.grid)
                    back = pair[1]
                yield self._propagated(ring, index, frame, forward, backward and backward[k], back)
                ring.forget(pending[0][0] if pending else index + 1, forward)
                # The next frame is read as soon as there is room, between the outputs of
                # a chunk: its flow is estimated on the source's threads while the sweeps
                # run, not after them (offline, DIS waited through each chunk's output).
                if len(pending) < capacity:
                    read()

        while True:
            while len(pending) < capacity and read():
                pass
            if not pending:
                return
            yield from output(min(s.block, len(pending)))

    def _propagated(self, ring: FrameRing, index, frame, forward, backward, back) -> Propagated:
        """Frame ``index`` with the values its states (``backward`` on its hole's box, or
        None) point at; ``back``: its flow to the frame before (1, 2, H, W), or None."""
        box = frame.box
        if box is None:
            return Propagated(frame, index, None, ~frame.hole_t)
        on_box = forward.state
        found = ring.gather([on_box] if backward is None else [on_box, backward], box)
        if self.seams:
            found = self._blended(ring, frame, box, forward, backward, found)
        value, valid = found[0]
        if backward is not None:
            value, valid = nearest((on_box.frame, value, valid), (backward.frame, *found[1]), index)
        hole = frame.hole_t[window(box)]
        values = torch.where(hole, value, frame.image[window(box)].float())
        reached = ~frame.hole_t
        reached[window(box)] |= valid
        back = None if back is None else back[window(box)].clone()
        return Propagated(frame, index, values, reached, back)

    @staticmethod
    def _blended(ring: FrameRing, frame: FrameInput, box: Box, forward, backward, found):
        """``found`` ((values, valid) of each sweep on ``box``), each sweep's values blended
        onto the frame's own pixels (``seams.blend_seams``) on the box and a pixel around."""
        height, width = frame.hole.shape
        region = grown(box, 1, height, width)
        inner = window(moved(box, -region[0], -region[2]))
        image, hole = frame.image[window(region)].float(), frame.hole_t[window(region)]
        states = [forward.on(region, ring.grid)]
        if backward is not None:  # kept on the box only
            source = torch.full_like(hole, -1, dtype=torch.int32)
            pos = torch.zeros_like(states[0].pos)
            source[inner], pos[inner] = backward.frame, backward.pos
            states.append(State(source, pos))

        def read(source, pos):
            return ring.gather([State(source, pos)], region)[0]

        blended = []
        for (values, valid), state in zip(found, states, strict=True):
            on_region = torch.zeros_like(image), torch.zeros_like(hole)
            on_region[0][inner], on_region[1][inner] = values, valid
            values = blend_seams(image, hole, state.frame, state.pos, *on_region, read)
            blended.append((values[inner], valid))
        return blended
