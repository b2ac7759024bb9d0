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
one frame; online mode has no backward sweep. The frames a sweep may read sit in a ring
of ``max_age + block + lookahead + 1`` slots on the device: memory is bounded by the
schedule, never by the video.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from fused_inpaint.ops import flow_propagate, propagation_gather
from fused_inpaint.pipeline.flow import FlowPair, FrameInput


@dataclass(frozen=True)
class Schedule:
    """When frames come out and how far propagation reaches (see the module docstring)."""

    block: int  # frames output per backward sweep
    lookahead: int  # frames after a block that its backward sweep starts from
    max_age: int  # the farthest a value travels, in frames (drift grows with every hop)
    backward: bool = True  # online mode: the forward sweep only
    alpha: float = 0.01  # fb_validity's test
    beta: float = 0.5

    @property
    def capacity(self) -> int:
        """Frames held on the device: the oldest a forward source may be, to the newest a
        backward sweep starts from."""
        return self.max_age + self.block + self.lookahead + 1


@dataclass
class State:
    """Where each pixel of one frame can read a value: source frame (-1: nowhere) and
    sub-pixel position in it."""

    frame: torch.Tensor  # (1, 1, H, W) int32
    pos: torch.Tensor  # (1, 2, H, W) float32 (x, y)


@dataclass
class Propagated:
    """A frame after propagation: ``image`` (1, 3, H, W) holds the frame's known pixels and
    the propagated ones, 0 elsewhere; ``reached`` (1, 1, H, W) bool, where it holds a value."""

    frame: FrameInput
    index: int
    image: torch.Tensor
    reached: torch.Tensor


class FrameRing:
    """The frames the sweeps read from, frame t in slot t % capacity, on the device."""

    def __init__(self, capacity: int, like: FrameInput):
        _, channels, height, width = like.image.shape
        kw = dict(device=like.image.device)
        self.images = torch.empty(
            1, capacity, channels, height, width, dtype=like.image.dtype, **kw
        )
        self.holes = torch.empty(1, capacity, 1, height, width, dtype=torch.uint8, **kw)
        self.capacity, self.newest = capacity, -1
        xs = torch.arange(width, dtype=torch.float32, **kw).expand(height, width)
        ys = torch.arange(height, dtype=torch.float32, **kw)[:, None].expand(height, width)
        self.grid = torch.stack([xs, ys])[None]  # (1, 2, H, W)

    def put(self, index: int, frame: FrameInput) -> None:
        slot = index % self.capacity
        self.images[0, slot] = frame.image[0]
        self.holes[0, slot] = frame.hole_t[0]
        self.newest = index

    def own(self, index: int, frame: FrameInput) -> State:
        """The state of a frame with no neighbour: its known pixels, nothing in its hole."""
        hole = frame.hole_t
        source = torch.where(hole, -1, index).to(torch.int32)
        return State(source, torch.where(hole, 0.0, self.grid))

    def gather(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """(image (1, 3, H, W), valid (1, 1, H, W) bool): the values ``state`` points at."""
        held = (state.frame >= self.newest - self.capacity + 1) & (state.frame >= 0)
        slots = torch.where(held, state.frame % self.capacity, -1).to(torch.int32)
        return propagation_gather(self.images, self.holes, slots, state.pos)


def nearest(forward: tuple, backward: tuple, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's value from the source nearer in time, both averaged on a tie.

    forward, backward: (State, image, valid) of one frame. Returns (image, reached)."""
    (state_f, image_f, valid_f), (state_b, image_b, valid_b) = forward, backward
    age_f = index - state_f.frame
    age_b = state_b.frame - index
    take_f = valid_f & ~(valid_b & (age_b < age_f))
    take_b = valid_b & ~(valid_f & (age_f < age_b))
    weight_f, weight_b = take_f.to(image_f.dtype), take_b.to(image_b.dtype)
    total = weight_f + weight_b
    image = (image_f * weight_f + image_b * weight_b) / total.clamp_min(1)
    return image, take_f | take_b


class Propagation:
    """Runs the sweeps of ``schedule`` over frames, their flows from ``flow_source``."""

    def __init__(self, flow_source, schedule: Schedule):
        self.flow_source, self.schedule = flow_source, schedule

    def _step(self, frame: FrameInput, index: int, state: State, flows, ahead: bool) -> State:
        """Frame ``index``'s state from its neighbour's ``state``; flows: (forward,
        backward) of the pair (index, index + 1) when ``ahead``, else (index - 1, index)."""
        forward, backward = flows
        to_neighbour, from_neighbour = (forward, backward) if ahead else (backward, forward)
        s = self.schedule
        frame_t, pos_t = flow_propagate(
            frame.hole_t, to_neighbour, from_neighbour, state.frame, state.pos, t=index,
            alpha=s.alpha, beta=s.beta, max_age=s.max_age,
        )  # fmt: skip
        return State(frame_t, pos_t)

    def _backward_states(self, ring: FrameRing, pending: deque, count: int, flows) -> list:
        """The backward sweep from the newest pending frame: the states of the first
        ``count`` pending frames."""
        index, frame = pending[-1]
        state = ring.own(index, frame)
        states = [state] if len(pending) == count else []
        for i in range(len(pending) - 2, -1, -1):
            index, frame = pending[i]
            state = self._step(frame, index, state, flows[index].flows(), ahead=True)
            if i < count:
                states.append(state)
        return states[::-1]

    def run(self, frames: Iterable[FrameInput]) -> Iterator[Propagated]:
        """Yields each frame after propagation, in order, at most ``block + lookahead - 1``
        frames after it was read."""
        s = self.schedule
        pending: deque[tuple[int, FrameInput]] = deque()  # read, not yet output
        flows: dict[int, FlowPair] = {}  # t -> the flows of the pair (t, t + 1)
        ring: FrameRing | None = None
        forward: State | None = None  # the forward state of the last frame output

        def output(count: int) -> Iterator[Propagated]:
            nonlocal forward
            backward = self._backward_states(ring, pending, count, flows) if s.backward else None
            for k in range(count):
                index, frame = pending.popleft()
                if forward is None:
                    forward = ring.own(index, frame)
                else:
                    pair = flows.pop(index - 1).flows()
                    forward = self._step(frame, index, forward, pair, ahead=False)
                image, reached = ring.gather(forward)
                if backward is not None:
                    image_b, reached_b = ring.gather(backward[k])
                    image, reached = nearest(
                        (forward, image, reached), (backward[k], image_b, reached_b), index
                    )
                yield Propagated(frame, index, image, reached)

        previous = None
        for index, frame in enumerate(frames):
            ring = ring or FrameRing(s.capacity, frame)
            ring.put(index, frame)
            if previous is not None:
                flows[index - 1] = FlowPair(self.flow_source.pair(previous, frame), previous, frame)
            previous = frame
            pending.append((index, frame))
            if len(pending) == s.block + s.lookahead:
                yield from output(s.block)
        while pending:
            yield from output(min(s.block, len(pending)))
