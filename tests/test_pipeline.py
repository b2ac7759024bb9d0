"""The inpainting pipeline (SPEC 5): flow sources, propagation, modes, and the Inpainter."""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import Future
from itertools import pairwise

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

import fused_inpaint as fi
from fused_inpaint.models.network import smooth_fill
from fused_inpaint.pipeline import MODES, SOURCES, Inpainter, resolved
from fused_inpaint.pipeline import filler as filler_module
from fused_inpaint.pipeline import flow as flow_module
from fused_inpaint.pipeline.filler import FILLS, inpaint
from fused_inpaint.pipeline.flow import (
    COMPLETION_MARGIN,
    MAX_MARGIN,
    MOVING_MARGIN,
    THIN_MARGIN,
    DISFlow,
    FlowPair,
    FrameInput,
    affine_fit,
    affine_parts,
    bounding_box,
    complete_flow,
    completion_margin,
    hole_shift,
    joined,
    residual_fill,
    upsampled,
    window,
)
from fused_inpaint.pipeline.propagation import Propagation, Schedule, State, Swept
from fused_inpaint.pipeline.steady import SteadyFill

# Every mode and flow source, the classical flow's cheapest preset.
SETUPS = [
    pytest.param(dict(mode=mode, flow=flow), id=f"{mode}-{flow}")
    for mode in MODES
    for flow in SOURCES
]


def make_clip(t: int, h: int, w: int, seed: int = 0):
    """Frames (T, H, W, 3) uint8 and masks (T, H, W) bool with a moving hole."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    masks = np.zeros((t, h, w), dtype=bool)
    for i in range(t):
        top, left = 2 + i % max(1, h - 8), 3 + (2 * i) % max(1, w - 10)
        masks[i, top : top + 5, left : left + 7] = True
    return frames, masks


def inpainter(**kw) -> Inpainter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Inpainter(device="cpu", **kw)


class ExactFlow:
    """A flow source that hands out given flows: pair t gets (forward[t], backward[t])."""

    name = "exact"

    def __init__(self, forward: torch.Tensor, backward: torch.Tensor):
        self.forward, self.backward = forward, backward  # (T - 1, 2, H, W) each
        self.calls = 0

    def pair(self, a, b):
        t = self.calls
        self.calls += 1
        return resolved((self.forward[t : t + 1], self.backward[t : t + 1]))

    def close(self) -> None:
        self.calls = 0


def translating(length: int, h: int, w: int, dx: int, seed: int = 0, cell: int = 3):
    """A smooth random texture (detail of about ``cell`` pixels) moving ``dx`` pixels right
    per frame: frames (T, H, W, 3) uint8 and the exact flows (forward +dx, backward -dx),
    (T - 1, 2, H, W) each."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // cell + 2, (w + dx * length) // cell + 2, generator=generator)
    texture = F.interpolate(coarse, size=(h, w + dx * length), mode="bicubic")
    texture = (texture[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    start = dx * length
    frames = np.stack([texture[:, start - dx * t :][:, :w] for t in range(length)])
    forward = torch.zeros(length - 1, 2, h, w)
    forward[:, 0] = dx
    return frames, forward, -forward


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("size", [(17, 23), (9, 41)])
def test_any_size_and_exact_known_pixels(setup, size):
    frames, masks = make_clip(5, *size)
    out = inpainter(**setup)(frames, masks)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.array_equal(out[~masks], frames[~masks])
    assert not np.array_equal(out[masks], frames[masks])  # the holes were filled


@pytest.mark.parametrize("fill", FILLS)
def test_each_fill_fills_the_hole_and_keeps_known_pixels(fill):
    frames, masks = make_clip(4, 20, 28)
    masks[:, 4:16, 6:20] = True  # static and large: propagation leaves its core
    out = inpainter(fill=fill, mode="online")(frames, masks)
    assert np.array_equal(out[~masks], frames[~masks])
    assert not np.array_equal(out[masks], frames[masks])


@pytest.mark.parametrize("mode", MODES)
def test_streaming_equals_whole_clip_and_static_mask(mode):
    model = inpainter(mode=mode, chunk=4, overlap=1, lookahead=2)
    frames, masks = make_clip(9, 16, 24)
    whole = model(frames, masks)
    streamed = np.stack(list(model.stream(iter(frames), iter(masks))))
    assert np.array_equal(whole, streamed)
    static = model(frames, masks[0])
    assert np.array_equal(static, model(frames, np.broadcast_to(masks[0], masks.shape)))
    assert np.array_equal(model(torch.from_numpy(frames), torch.from_numpy(masks)), whole)


@pytest.mark.parametrize(
    "options,latency",
    [
        (dict(mode="online"), 0),
        (dict(mode="stream", lookahead=3), 3),
        (dict(mode="offline", chunk=5, overlap=2), 4),
    ],
)
def test_latency_is_bounded(options, latency):
    model = inpainter(**options)
    assert model.latency == latency
    frames, masks = make_clip(11, 16, 16)
    read = []

    def source():
        for i, frame in enumerate(frames):
            read.append(i)
            yield frame

    for index, _ in enumerate(model.stream(source(), masks)):
        assert len(read) <= index + latency + 1  # bounded latency, bounded memory
    assert index == len(frames) - 1


@pytest.mark.parametrize("mode", MODES)
def test_frames_without_a_hole_among_frames_with_one(mode):
    """An object that leaves and comes back: frames whose mask is empty (the first, some
    in the middle, the last) come back as they were, and the others are filled."""
    frames, masks = make_clip(14, 16, 24)
    masks[[0, 5, 6, 7, 13]] = False
    out = inpainter(mode=mode, flow=ExactFlow(*translating(14, 16, 24, 1)[1:]), chunk=6,
                    overlap=2, lookahead=2)(frames, masks)  # fmt: skip
    assert np.array_equal(out[~masks], frames[~masks])
    assert np.array_equal(out[[0, 5, 6, 7, 13]], frames[[0, 5, 6, 7, 13]])


class CountedDIS(DISFlow):
    """DIS that counts the pairs it is asked for."""

    def __init__(self):
        super().__init__(torch.device("cpu"), "medium", threads=1)
        self.pairs = 0

    def pair(self, a, b):
        self.pairs += 1
        return super().pair(a, b)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("temporal", [False, True])
def test_pairs_without_a_hole_cost_no_flow(mode, temporal, monkeypatch):
    """Where neither frame of a pair has a hole, no flow of the pair is read: none is
    estimated (unless a pair carries its flow to the next), and the output is the same as
    with every pair's flow estimated."""
    frames, _, _ = translating(12, 24, 40, 1)
    masks = np.zeros((12, 24, 40), dtype=bool)
    masks[:, 6:14, 10:20] = True
    masks[4:9] = False  # pairs (4, 5) .. (7, 8) have no hole
    sources = [CountedDIS(), CountedDIS()]
    outputs = []
    for source in sources:
        model = inpainter(mode=mode, flow=source, chunk=6, overlap=2, lookahead=2,
                          temporal_flow=temporal)  # fmt: skip
        outputs.append(model(frames, masks))
        monkeypatch.setattr(FlowPair, "needed", staticmethod(lambda a, b, temporal: True))
    assert sources[0].pairs == (11 if temporal else 7)
    assert sources[1].pairs == 11
    assert np.array_equal(outputs[0], outputs[1])


def test_a_pixel_seen_k_frames_away_is_recovered_exactly():
    """Exact, consistent flows: every hidden pixel that some frame within reach shows comes
    back exactly, from the nearest such frame, in every mode."""
    length, h, w, dx = 12, 10, 40, 2
    frames, forward, backward = translating(length, h, w, dx)
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 2:8, 15:27] = True  # static: a pixel 12 columns deep is seen 6 frames away
    for options in (dict(mode="offline", chunk=12, overlap=4), dict(mode="stream", lookahead=6)):
        out = inpainter(flow=ExactFlow(forward, backward), max_age=6, **options)(frames, masks)
        assert np.array_equal(out, frames), options
    # Online: only the past; from frame 6 on every hidden pixel has been seen.
    out = inpainter(flow=ExactFlow(forward, backward), mode="online", max_age=6)(frames, masks)
    assert np.array_equal(out[6:], frames[6:])
    assert not np.array_equal(out[:6], frames[:6])


def test_max_age_caps_the_reach():
    length, h, w, dx = 12, 10, 40, 2
    frames, forward, backward = translating(length, h, w, dx)
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 2:8, 15:27] = True
    source = ExactFlow(forward, backward)
    schedule = Schedule(block=12, lookahead=0, max_age=2)
    model = inpainter()
    done = list(Propagation(source, schedule).run(model._inputs(frames, masks)))
    for item in done:
        t = item.index
        reached = item.reached[0, 0].numpy() & masks[t]
        # At most two frames each way, 2 pixels a frame: the past shows the hole's left
        # columns, the future its right ones.
        expected = np.zeros(w, dtype=bool)
        expected[15 : 15 + dx * min(2, t)] = True
        expected[27 - dx * min(2, length - 1 - t) : 27] = True
        assert np.array_equal(reached[2:8], np.broadcast_to(expected, (6, w))), t
        assert not reached[:2].any() and not reached[8:].any()


def test_the_nearer_frame_wins_and_a_tie_averages():
    """Zero motion, a 6-pixel hole moving right 4 pixels a frame, each frame one flat
    level: a pixel takes the level of the nearest frame that shows it, the mean on a tie."""
    length, h, w = 5, 6, 24
    frames = np.stack([np.full((h, w, 3), 40 * t, dtype=np.uint8) for t in range(length)])
    masks = np.zeros((length, h, w), dtype=bool)
    for t in range(length):
        masks[t, :, 4 * t : 4 * t + 6] = True
    zeros = torch.zeros(length - 1, 2, h, w)
    out = inpainter(flow=ExactFlow(zeros, zeros), mode="offline")(frames, masks)
    # Frame 2's hole, columns 8..13: 8, 9 shown by frames 0 and 3, 10, 11 by frames 1 and
    # 3 (a tie), 12, 13 by frames 1 and 4.
    assert (out[2, :, 8:10] == 120).all()
    assert (out[2, :, 10:12] == 80).all()  # (40 + 120) / 2
    assert (out[2, :, 12:14] == 40).all()


def test_nothing_is_carried_through_inconsistent_flow():
    length, h, w = 4, 8, 20
    frames, forward, _ = translating(length, h, w, 3)
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 2:6, 6:14] = True
    source = ExactFlow(forward, forward)  # the backward flow does not undo the forward one
    schedule = Schedule(block=length, lookahead=0, max_age=10)
    done = list(Propagation(source, schedule).run(inpainter()._inputs(frames, masks)))
    assert len(done) == length
    for item in done:
        assert not (item.reached[0, 0].numpy() & masks[item.index]).any()


@pytest.mark.parametrize("case", ["moving", "leaving", "nan", "no hole", "neighbour without"])
def test_a_step_on_the_holes_neighbourhood_is_the_whole_frames(case):
    """A sweep's step runs ``flow_propagate`` on the hole's box grown by its flow's reach
    only: on the box it gives what the whole frame gives, the known pixels reading
    themselves (flows that leave the frame, a NaN flow: the whole frame, no hole)."""
    h, w, t = 41, 57, 5
    gen = torch.Generator().manual_seed(0)
    hole = torch.zeros(h, w, dtype=torch.bool)
    if case != "no hole":
        hole[12:25, 20:37] = True
    hole[30:33, 5:9] = case != "no hole"
    # Consistent flows (the forward-backward test passes) that leave the frame or not, in
    # quarter pixels as float16 flows often are: half-pixel ties, rounded to even.
    motion = torch.tensor([2.5, -1.5]).view(1, 2, 1, 1) * (13 if case == "leaving" else 1)
    to_neighbour = motion + (torch.randn(1, 2, h, w, generator=gen) * 0.4).round() / 4
    from_neighbour = -motion + (torch.randn(1, 2, h, w, generator=gen) * 0.4).round() / 4
    if case == "nan":
        to_neighbour[0, 0, 15, 22] = float("nan")
    grid = torch.stack(
        torch.meshgrid(torch.arange(w).float(), torch.arange(h).float(), indexing="xy")
    )[None]
    # The neighbour's own state: a hole of its own with sources in it.
    if case == "neighbour without":
        neighbour = Swept(t - 1, None, None)
    else:
        box = (8, 30, 15, 45)
        source = torch.randint(-1, t - 1, (1, 1, 22, 30), generator=gen, dtype=torch.int32)
        pos = torch.rand(1, 2, 22, 30, generator=gen) * torch.tensor([w, h]).view(1, 2, 1, 1)
        neighbour = Swept(t - 1, box, State(source, pos))
    rgb = np.zeros((h, w, 3), np.uint8)
    frame = fi.pipeline.flow.FrameInput.of(rgb, hole.numpy(), torch.device("cpu"))
    step = Propagation(None, Schedule(block=1, lookahead=0, max_age=30))._step
    got = step(frame, t, neighbour, (from_neighbour, to_neighbour), ahead=False, grid=grid)
    whole = neighbour.on((0, h, 0, w), grid)
    want = fi.flow_propagate(
        frame.hole_t, to_neighbour, from_neighbour, whole.frame, whole.pos, t=t, max_age=30
    )
    if case == "no hole":
        assert got.box is None and got.state is None
        assert (want[0] == t).all()
        return
    box = frame.box
    assert (got.state.frame >= 0).any()  # some hole pixels found a source
    assert got.box == box and torch.equal(got.state.frame, want[0][window(box)])
    torch.testing.assert_close(got.state.pos, want[1][window(box)], atol=1e-4, rtol=0)


def test_affine_motion_is_completed_exactly():
    """A camera's zoom and pan: the flow inside the hole comes back from the flow around."""
    h, w = 20, 30
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    flow = torch.stack([0.05 * xs - 0.02 * ys + 1.5, 0.01 * xs + 0.05 * ys - 2.0])[None]
    hole = torch.zeros(1, 1, h, w, dtype=torch.bool)
    hole[..., 5:14, 8:20] = True
    torch.testing.assert_close(affine_fit(flow, ~hole), flow, atol=1e-4, rtol=0)
    no_hole = torch.zeros_like(hole)
    garbage = torch.where(hole, 100.0, flow)
    torch.testing.assert_close(complete_flow(garbage, hole, no_hole), flow, atol=1e-4, rtol=0)
    # Where the flow points into the other frame's hole it is a guess too.
    target_hole = torch.zeros_like(hole)
    target_hole[..., 2:10, 22:30] = True
    garbage = flow.clone()
    garbage[:, 0, 4:8, 10:14] += 12  # a wrong estimate that lands in target_hole
    torch.testing.assert_close(
        complete_flow(garbage, no_hole, target_hole), flow, atol=1e-4, rtol=0
    )
    # Far from both holes the flow is the estimate itself.
    bumpy = flow + torch.randn_like(flow)
    completed = complete_flow(bumpy, hole, no_hole)
    torch.testing.assert_close(completed[..., :, :2], bumpy[..., :, :2])


def test_affine_motion_is_completed_exactly_at_half_resolution(monkeypatch):
    """The smooth fill from 2x2 means: an affine flow still comes back exactly."""
    monkeypatch.setattr(flow_module, "HALF_FILL_SIDE", 2)  # halved down to 2 pixels
    test_affine_motion_is_completed_exactly()


def still(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``affine_parts`` of no motion on an (h, w) region."""
    return torch.zeros(1, 2, 1, w), torch.zeros(1, 2, h, 1)


@pytest.mark.parametrize("size", [(31, 47), (33, 33), (64, 90)])
def test_the_half_resolution_fill_is_as_close_as_the_full_one(monkeypatch, size):
    """Inside the guess a smooth field is filled about as well from the 2x2 means as at
    full resolution (mean error within 5% of it)."""
    h, w = size
    monkeypatch.setattr(flow_module, "HALF_FILL_SIDE", min(h, w))  # halved once
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    field = torch.stack([torch.sin(xs / 9) * 3, torch.cos(ys / 7) * 2])[None]
    guessed = torch.zeros(1, 1, h, w, dtype=torch.bool)
    guessed[..., h // 4 : 3 * h // 4 + 1, w // 3 : 2 * w // 3 + 1] = True
    half = residual_fill(field, still(h, w), guessed, (0, h, 0, w))
    inside = guessed.expand_as(field)
    error = (half - field)[inside].abs().mean()
    assert error <= 1.05 * (smooth_fill(field, guessed) - field)[inside].abs().mean()


@pytest.mark.parametrize("size", [(37, 45), (32, 33), (9, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_fill_halves_like_2x2_pooling_and_subtracts_the_motion(monkeypatch, size, dtype):
    """The fill's coarse level is the weighted means of 2x2 sums taken again and again
    (odd ends alone: the region is padded), of the flow less the affine motion."""
    monkeypatch.setattr(flow_module, "HALF_FILL_SIDE", 8)
    h, w = size
    flow = (torch.randn(1, 2, h, w) * 4).to(dtype)
    guessed = torch.rand(1, 1, h, w) > 0.6
    guessed[..., h // 3 : h // 2, w // 4 : w // 2] = True
    known = (~guessed).float()
    motion = affine_parts(flow, ~guessed)
    residual = flow.float() - (motion[0] + motion[1])
    level = torch.cat([residual * known, known], 1)
    while min(level.shape[-2:]) >= 8:
        level = F.avg_pool2d(level, 2, ceil_mode=True, divisor_override=1)
    coarse = smooth_fill(level[:, :2] / level[:, 2:].clamp_min(1e-30), level[:, 2:] == 0)
    expected = upsampled(coarse, size, (0, h, 0, w))
    fill = residual_fill(flow, motion, guessed, (0, h, 0, w))
    inside = guessed.expand_as(fill)
    torch.testing.assert_close(fill[inside], expected[inside], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("coarse, size", [((5, 7), (37, 51)), ((4, 4), (31, 32)), ((1, 3), (2, 9))])
def test_upsampled_on_a_box_is_the_interpolation_cropped(coarse, size):
    image = torch.randn(1, 2, *coarse)
    full = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    for box in [(0, size[0], 0, size[1]), (3 % size[0], size[0] - 1, 2, size[1] - 3)]:
        part = upsampled(image, size, box)
        torch.testing.assert_close(part, full[..., box[0] : box[1], box[2] : box[3]])


def test_residual_fill_on_a_box_is_the_whole_fill_cropped(monkeypatch):
    monkeypatch.setattr(flow_module, "HALF_FILL_SIDE", 8)  # halved twice at 37x45
    field = torch.randn(1, 2, 37, 45)
    guessed = torch.zeros(1, 1, 37, 45, dtype=torch.bool)
    guessed[..., 10:25, 12:30] = True
    whole = residual_fill(field, still(37, 45), guessed, (0, 37, 0, 45))
    torch.testing.assert_close(
        residual_fill(field, still(37, 45), guessed, (9, 26, 11, 31)), whole[..., 9:26, 11:31]
    )


@pytest.mark.parametrize("channels", [3, 0])
@pytest.mark.parametrize("flag", [cv2.INPAINT_NS, cv2.INPAINT_TELEA])
def test_a_large_fill_at_half_resolution_is_the_full_fill_inside(monkeypatch, channels, flag):
    """Known pixels stay exact; inside a large hole the fill from half resolution is about
    as close to a smooth image as OpenCV's own (measured: 8% farther with Navier-Stokes,
    14% with Telea, on a hole 60% of the image across; in the pipeline at 854x480 the
    PSNR in the hole was unchanged)."""
    h, w = 150, 170
    ys, xs = np.mgrid[0:h, 0:w]
    smooth = 128 + 60 * np.sin(xs / 23) * np.cos(ys / 31)
    truth = np.repeat(smooth[..., None], 3, axis=2) if channels else smooth
    truth = np.ascontiguousarray(truth.round().astype(np.uint8))
    hole = np.zeros((h, w), np.uint8)
    hole[30:121, 40:141] = 255  # nonzero: the hole
    image = np.where(hole.reshape(hole.shape + (1,) * (truth.ndim - 2)), 0, truth)
    monkeypatch.setattr(filler_module, "HALF_SIDE", 100)  # halved once
    half = inpaint(image, hole, flag)
    full = cv2.inpaint(image, hole, filler_module.CLASSICAL_RADIUS, flag)
    assert np.array_equal(half[hole == 0], truth[hole == 0])
    error = {name: np.abs(out.astype(float) - truth)[hole != 0].mean()
             for name, out in (("half", half), ("full", full))}  # fmt: skip
    assert error["half"] < 1.2 * error["full"]


def test_bounding_box_of_any_mask():
    """The box around a mask's nonzero pixels over all its planes, also of strided and
    transposed masks, as torch's reductions find it; None for an empty mask."""
    generator = torch.Generator().manual_seed(0)
    for case in range(200):
        n, h, w = (int(v) for v in torch.randint(1, 40, (3,), generator=generator))
        mask = torch.rand(n % 3 + 1, 1, h, w, generator=generator) > 0.97 + 0.03 * (case % 2)
        if case % 3 == 0:
            mask = mask[..., ::2, 1::2]
        if case % 5 == 0:
            mask = mask.transpose(-1, -2)
        rows = mask.reshape(-1, *mask.shape[-2:]).any(dim=0)
        ys, xs = rows.any(dim=1).nonzero(), rows.any(dim=0).nonzero()
        expected = (int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1) if len(ys) else None
        assert bounding_box(mask) == expected


def test_a_pairs_two_directions_join_into_one_future():
    """DIS estimates a pair's directions as two tasks: their joint future holds both
    results in order, the first failure, or is cancelled with them."""
    first, second = Future(), Future()
    joint = joined(first, second)
    second.set_result("backward")
    assert not joint.done()
    first.set_result("forward")
    assert joint.result(timeout=1) == ("forward", "backward")
    failing, pending = Future(), Future()
    joint = joined(failing, pending)
    failing.set_exception(ValueError("no flow"))
    with pytest.raises(ValueError, match="no flow"):
        joint.result(timeout=1)
    cancelled = Future()
    joint = joined(cancelled, Future())
    cancelled.cancel()
    assert joint.cancelled()


def test_dis_recovers_a_translation():
    frames, _, _ = translating(2, 48, 64, 3)
    masks = np.zeros((2, 48, 64), dtype=bool)
    masks[:, 20:30, 25:40] = True
    model = inpainter()
    a, b = model._inputs(frames, masks)
    source = DISFlow(torch.device("cpu"), "medium", threads=2)
    estimate = source.pair(a, b)
    forward, backward = estimate.result()
    assert forward.shape == backward.shape == (1, 2, 48, 64)
    inner = (..., slice(8, -8), slice(8, -8))  # away from the borders the texture left
    assert (forward[inner][:, 0] - 3).abs().median() < 0.1
    assert (backward[inner][:, 0] + 3).abs().median() < 0.1
    assert forward[inner][:, 1].abs().median() < 0.1
    # Completed in the hole, kept where propagation reads it: the hole and around.
    forward, backward = FlowPair(estimate, a, b).flows()
    source.close()
    hole = (..., slice(20, 30), slice(25, 40))
    assert (forward[hole][:, 0] - 3).abs().median() < 0.1
    assert (backward[hole][:, 0] + 3).abs().median() < 0.1


def moving_ellipse(length: int, h: int, w: int, speed: int) -> np.ndarray:
    """(T, H, W) bool: an ellipse of about 100 x 120 pixels moving ``speed`` pixels right a
    frame."""
    y, x = np.ogrid[:h, :w]
    return np.stack(
        [((x - 100 - speed * t) / 50) ** 2 + ((y - h / 2) / 60) ** 2 < 1 for t in range(length)]
    )


def test_the_hole_moved_by_is_the_farthest_a_pixel_of_one_lies_from_the_other():
    masks = moving_ellipse(3, 240, 432, 12)
    masks[2] = masks[1]
    far = masks[0].copy()
    far[:, -40:] = True  # a hole that appears across the frame
    empty = np.zeros_like(far)
    a, b, c, appears, none = (
        FrameInput.of(np.zeros((240, 432, 3), np.uint8), m, torch.device("cpu"))
        for m in (*masks, far, empty)
    )
    assert hole_shift(a, b) == pytest.approx(12, abs=0.5)
    assert completion_margin(a, b) == math.ceil(MOVING_MARGIN * hole_shift(a, b))
    assert hole_shift(b, c) == 0 and completion_margin(b, c) == COMPLETION_MARGIN
    assert hole_shift(a, none) == 0
    assert completion_margin(a, appears) == math.ceil(MAX_MARGIN * 432)  # bounded


def test_a_thin_holes_band_is_bounded_by_its_inradius():
    """A stroke 17 pixels thick (its middle row 9 from outside it) moving 20 pixels a
    frame: the band replaced is THIN_MARGIN of that inradius, not 1.25 times its motion;
    a thick blob's widens with its motion."""

    def frame_input(hole: np.ndarray) -> FrameInput:
        return FrameInput.of(np.zeros((*hole.shape, 3), np.uint8), hole, torch.device("cpu"))

    thin = np.zeros((2, 240, 432), bool)
    for t in range(2):
        thin[t, 100:117, 60 + 20 * t : 260 + 20 * t] = True
    a, b, still = (frame_input(m) for m in (thin[0], thin[1], thin[1]))
    assert a.inradius == pytest.approx(9, abs=0.5)
    assert hole_shift(a, b) == pytest.approx(20, abs=0.5)
    assert completion_margin(a, b) == math.ceil(THIN_MARGIN * a.inradius) == 5
    assert completion_margin(b, still) == COMPLETION_MARGIN
    blob_a, blob_b = (frame_input(m) for m in moving_ellipse(2, 240, 432, 12))
    assert blob_a.inradius == pytest.approx(50, abs=1)
    assert completion_margin(blob_a, blob_b) == math.ceil(MOVING_MARGIN * 12)
    assert frame_input(np.zeros((240, 432), bool)).inradius == 0


def test_the_band_replaced_widens_with_the_holes_motion():
    """DIS sees the fill move with the hole and bends the flow around it that way, as far
    out as the hole moved: the band replaced widens with that motion, so that the
    forward-backward test does not stop propagation there (with a band of 4 pixels
    whatever the motion, 20 dB in this hole: most of it filled from nothing)."""
    frames, _, _ = translating(12, 240, 432, 2, cell=8)
    masks = moving_ellipse(12, 240, 432, 12)
    output = inpainter()(frames, masks)
    error = output[masks].astype(float) - frames[masks]
    assert 10 * math.log10(255**2 / max((error**2).mean(), 1e-12)) > 40


def test_dis_on_the_calling_thread_gives_the_pools_flows():
    frames, masks = make_clip(6, 48, 64)
    model = inpainter()
    a, b = model._inputs(frames[:2], masks[:2])
    pooled, inline = (DISFlow(torch.device("cpu"), "medium", threads=n) for n in (1, 0))
    estimate = inline.pair(a, b)
    assert estimate.done()  # computed before pair returned, on this thread
    for mine, theirs in zip(estimate.result(), pooled.pair(a, b).result(), strict=True):
        assert torch.equal(mine, theirs)
    pooled.close()
    inline.close()
    assert np.array_equal(inpainter(threads=0)(frames, masks), model(frames, masks))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cpus, offline_threads", [(2, 1), (4, 2), (16, 3)])
def test_torch_threads_in_the_run_and_the_callers_between_frames(
    monkeypatch, mode, cpus, offline_threads
):
    """Offline on the CPU, DIS on 2 threads of its own: the pipeline's tensor work on the
    CPUs DIS leaves (at least one, at most the caller's 3) while DIS estimates the next
    chunk; on the caller's while DIS idles (a backward sweep, whose flows are all
    estimated, and the frames after the last read); the caller sees its own setting
    between frames and after. Stream and online modes keep the caller's."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    frames, masks = make_clip(12, 32, 48)
    masks[:] = masks[0]  # a hole that stays put: what no frame shows is filled on each
    model = inpainter(mode=mode, threads=2, chunk=4, overlap=1)
    fills, sweeps = [], []

    def fill(image, remaining):
        fills.append(torch.get_num_threads())
        return image

    step = Propagation._step

    def spied_step(self, *args, ahead, **kw):
        if ahead:
            sweeps.append(torch.get_num_threads())
        return step(self, *args, ahead=ahead, **kw)

    monkeypatch.setattr(Propagation, "_step", spied_step)
    model.filler = fill
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        between = [torch.get_num_threads() for _ in model.stream(frames, masks)]
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert between == [3] * len(frames)
    assert len(fills) == len(frames) and set(sweeps) <= {3}
    if mode == "offline":  # 3 frames a chunk; the last frame is read with the 9th output
        assert fills == [offline_threads] * 9 + [3] * 3 and sweeps
    else:
        assert set(fills) == {3}


def test_offline_reads_the_next_chunk_between_its_outputs():
    """Each output of a chunk is followed by the read of a frame of the next (its flows
    asked for), not the whole chunk after the last: DIS's threads work while the sweeps
    run. The latency stays block + lookahead - 1 frames."""
    frames, masks = make_clip(14, 24, 32)
    log = []

    def reading():
        for frame in frames:
            log.append("read")
            yield frame

    model = inpainter(mode="offline", chunk=6, overlap=2)
    read_before = []
    for _ in model.stream(reading(), masks):
        read_before.append(log.count("read"))
    assert read_before == [min(6 + k, len(frames)) for k in range(len(frames))]


def object_through_a_hole(length: int = 16, h: int = 64, w: int = 96):
    """A textured background moving 1 pixel right a frame, a 12x12 textured square moving
    3 right, and a 32x32 hole moving 1 left that the square passes through after it was
    seen: frames (T, H, W, 3) uint8, holes (T, H, W) bool, the exact flows (forward,
    backward) (T - 1, 2, H, W) each, and which layer each pixel shows (T, H, W)."""
    from fused_inpaint.data import Layer, flow_between, render
    from fused_inpaint.data.masks import render_holes
    from fused_inpaint.data.motion import translation

    generator = torch.Generator().manual_seed(0)

    def texture(side_h: int, side_w: int) -> torch.Tensor:
        coarse = torch.rand(1, 3, side_h // 4 + 1, side_w // 4 + 1, generator=generator)
        return F.interpolate(coarse, size=(side_h, side_w), mode="bilinear")[0]

    def path(x: float, y: float, dx: float) -> torch.Tensor:
        return torch.stack([translation(x + dx * t, y) for t in range(length)])

    layers = [
        Layer(texture(h + 40, w + 40), torch.ones(h + 40, w + 40), path(-20, -20, 1)),
        Layer(texture(12, 12), torch.ones(12, 12), path(4, 26, 3)),
    ]
    video, owner = render(layers, h, w)
    holes = render_holes([Layer(None, torch.ones(32, 32), path(56, 16, -1))], h, w)
    flows = [
        torch.stack([flow_between(layers, owner, s, t)[0] for s, t in pairs])
        for pairs in (
            [(t, t + 1) for t in range(length - 1)],
            [(t + 1, t) for t in range(length - 1)],
        )
    ]  # fmt: skip
    frames = (video * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return frames, holes.numpy(), *flows, owner


def test_temporal_completion_recovers_an_object_moving_through_a_hole():
    """The square's motion inside the hole is its own, as the frames before showed it;
    the spatial completion alone gives it the background's."""
    frames, holes, forward, backward, owner = object_through_a_hole()
    guesses = (torch.where(torch.from_numpy(h)[:, None], 50.0, f)  # nothing known in the hole
               for h, f in ((holes[:-1], forward), (holes[1:], backward)))  # fmt: skip
    source = ExactFlow(*guesses)
    in_hole = torch.from_numpy(holes[1:]) & (owner[1:] == 1)
    assert in_hole.sum() > 300

    def error_on_the_square(temporal_flow: bool) -> float:
        model = inpainter(flow=source, temporal_flow=temporal_flow)
        completed = torch.cat([b for _, b in model.completed_flows(frames, holes)])
        return float((completed - backward).norm(dim=1)[in_hole].mean())

    assert error_on_the_square(True) < 0.25
    assert error_on_the_square(False) > 1.5
    # Through propagation: the square's pixels are carried to where it is.
    truth = frames.astype(float)
    blanked = np.where(holes[..., None], 0, frames).astype(np.uint8)
    errors = []
    for temporal_flow in (True, False):
        out = inpainter(flow=source, temporal_flow=temporal_flow)(blanked, holes)
        np.testing.assert_array_equal(out[~holes], frames[~holes])
        errors.append(np.abs(out[1:][in_hole.numpy()] - truth[1:][in_hole.numpy()]).mean())
    assert errors[0] < errors[1] / 2
    with pytest.raises(ValueError, match="temporal_flow must be True or False"):
        inpainter(temporal_flow="yes")


def noisy(frames: np.ndarray, seed: int, sigma: float = 4.0) -> np.ndarray:
    """frames with Gaussian noise of ``sigma`` levels, new on every frame (a sensor's)."""
    noise = np.random.default_rng(seed).normal(0, sigma, frames.shape)
    return (frames + noise).round().clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dx", [0, 2], ids=["still", "panning"])
def test_what_no_frame_shows_does_not_flicker(mode, dx):
    """A hole that moves with the scene (or stays, on a still one) hides the same part of
    it on every frame: its fill, averaged along the motion, changes along it far less
    than each frame's own fill does with the noise around it."""
    length, h, w = 12, 40, 56
    clean, forward, backward = translating(length, h, w, dx, seed=4, cell=6)
    frames = noisy(clean, seed=5)
    holes = np.zeros((length, h, w), dtype=bool)
    for t in range(length):
        holes[t, 12:28, 14 + dx * t : 30 + dx * t] = True
    change = {}
    for steady_fill in (True, False):
        model = inpainter(mode=mode, flow=ExactFlow(forward, backward), steady_fill=steady_fill)
        out = model(frames, holes).astype(float)
        np.testing.assert_array_equal(out[~holes], frames[~holes])
        # Each frame's hole against where its pixels were on the frame before (the first
        # frame has nothing before it: from the second on).
        inside = [out[t, 12:28, 14 + dx * t : 30 + dx * t] for t in range(1, length)]
        change[steady_fill] = np.mean([np.abs(b - a).mean() for a, b in pairwise(inside)])
    assert change[False] > 1.0  # the noise around the hole moves each frame's own fill
    assert change[True] < change[False] / 2


def test_the_steady_fill_is_the_decayed_mean_along_the_flow():
    """Each pixel: its own value, then the frame before's where its flow points (1 right),
    then the one before that's (2 right), weighted 1, 1/2, 1/4, as long as the chain stays
    in the boxes and on pixels that were filled there (not the frame before's first two
    columns); a frame without a hole ends every chain."""
    box = (2, 6, 3, 9)
    h, w = box[1] - box[0], box[3] - box[2]
    xs = np.arange(box[2], box[3], dtype=float)[None].repeat(h, 0)
    back = torch.zeros(1, 2, h, w)
    back[:, 0] = 1
    steady = SteadyFill(frames=3, decay=0.5)
    for k in range(3):
        values = torch.from_numpy(np.stack([10 * k + xs] * 3))[None].float()
        take = torch.ones(1, 1, h, w, dtype=torch.bool)
        if k == 1:
            take[..., :2] = False
        out = steady.averaged(values, take, None if k == 0 else back, box)
    total, weights = 20 + xs, np.ones_like(xs)
    reached = np.ones_like(xs, dtype=bool)
    for k, weight in ((1, 0.5), (0, 0.25)):
        on = xs + (2 - k)  # where the pixel was on frame k
        reached &= on <= box[3] - 1
        if k == 1:
            reached &= on >= box[2] + 2
        total += np.where(reached, weight * (10 * k + on), 0)
        weights += weight * reached
    assert reached.any() and not reached.all()
    np.testing.assert_allclose(out[0, 0].numpy(), total / weights, rtol=1e-6)
    steady.skip()
    alone = steady.averaged(values, take, back, box)
    torch.testing.assert_close(alone, values)
    with pytest.raises(ValueError, match="steady_fill must be True or False"):
        inpainter(steady_fill="yes")


def test_dis_sees_the_hole_filled_from_around_it():
    """A blank hole would be an edge DIS follows: it sees it filled, the rest as it is."""
    rgb = np.full((40, 48, 3), 90, dtype=np.uint8)
    rgb[:, 24:] = 150
    hole = np.zeros((40, 48), dtype=bool)
    hole[10:30, 8:20] = True  # inside the left half
    rgb[hole] = 0
    frame = fi.pipeline.flow.FrameInput.of(rgb, hole, torch.device("cpu"))
    source = DISFlow(torch.device("cpu"), "medium", threads=1)
    gray = source._gray(frame)
    source.close()
    np.testing.assert_array_equal(gray[~hole], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[~hole])
    assert np.abs(gray[hole].astype(int) - 90).max() <= 2


def test_read_only_and_flipped_frames():
    frames, masks = make_clip(3, 16, 24)
    model = inpainter()
    expected = model(frames, masks)
    read_only = np.frombuffer(frames.tobytes(), dtype=np.uint8).reshape(frames.shape)
    flipped = frames[..., ::-1].copy()[..., ::-1]  # the same values, negative strides
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        assert np.array_equal(model(read_only, masks), expected)
    assert np.array_equal(model(flipped, masks), expected)


def test_compiled_filler_matches_eager():
    """The network through torch.compile: inductor alone on CPU (no CUDA graphs)."""
    torch.compiler.reset()
    frames, masks = make_clip(3, 24, 32)
    model = inpainter(mode="online", fill="network")
    compiled = inpainter(mode="online", fill="network", compile=True)
    graphs = counters["stats"]["unique_graphs"]
    whole = compiled(frames, masks)
    streamed = np.stack(list(compiled.stream(iter(frames), iter(masks))))
    # One crop size (the whole 24x32 frame): one graph, compiled once for both clips.
    assert counters["stats"]["unique_graphs"] - graphs == 1
    assert np.array_equal(whole, streamed)
    assert np.abs(whole.astype(int) - model(frames, masks)).max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_the_gpu_pipeline_recovers_what_a_frame_shows(backend):
    """float16 on the GPU, the propagation ops on each GPU backend: exact, consistent
    flows bring every hidden pixel back exactly, as on the CPU; DIS runs there too."""
    length, h, w, dx = 12, 10, 40, 2
    frames, forward, backward = translating(length, h, w, dx)
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 2:8, 15:27] = True
    exact = ExactFlow(forward.cuda(), backward.cuda())
    with fi.use_backend(backend):
        out = Inpainter(device="cuda", flow=exact, max_age=6, chunk=12, overlap=4)(frames, masks)
        assert np.array_equal(out, frames)
        clip, holes = make_clip(8, 48, 64)
        on_gpu = Inpainter(device="cuda")(clip, holes)
    assert np.array_equal(on_gpu[~holes], clip[~holes])


@pytest.mark.gpu
@pytest.mark.long
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graphs_match_eager():
    # float32: inductor's fused kernels round float16 differently from eager's
    eager = Inpainter(device="cuda", dtype=torch.float32, flow="network", fill="network")
    graphed = Inpainter(
        device="cuda", dtype=torch.float32, flow="network", fill="network", compile=True
    )
    frames, masks = make_clip(6, 48, 64)
    expected = eager(frames, masks).astype(int)
    skips = counters["inductor"]["cudagraph_skips"]
    for _ in range(3):  # warm-up, recording, then replays of the recorded graphs
        out = graphed(frames, masks)
        assert np.array_equal(out[~masks], frames[~masks])
        assert np.abs(out - expected).max() <= 2
    assert counters["inductor"]["cudagraph_skips"] == skips  # every graph ran as a CUDA graph


def test_backends_agree():
    frames, masks = make_clip(4, 16, 24)
    model = inpainter()
    outputs = {}
    backends = [b for b, s in fi.available_backends().items() if s.available and b != "cuda"]
    for backend in backends:
        with fi.use_backend(backend):
            outputs[backend] = model(frames, masks).astype(int)
    for backend, out in outputs.items():
        # uint8 outputs of float32 networks: at most one level apart.
        assert np.abs(out - outputs["torch"]).max() <= 1, backend


def test_bad_inputs_are_named():
    frames, masks = make_clip(3, 16, 16)
    model = inpainter()
    with pytest.raises(ValueError, match="frame 0 must be uint8"):
        model(frames.astype(np.float32), masks)
    with pytest.raises(ValueError, match="mask 0 must have the frames' size"):
        model(frames, masks[:, :8])
    with pytest.raises(ValueError, match="fewer masks than frames"):
        model(frames, masks[:2])
    with pytest.raises(ValueError, match="more masks than frames"):
        model(frames[:2], masks)
    with pytest.raises(ValueError, match="frame 1 has size"):
        model([frames[0], frames[1, :8]], masks[0])
    with pytest.raises(ValueError, match="frames is empty"):
        model([], masks)
    for options, message in [
        (dict(dtype=torch.float64), "dtype must be"),
        (dict(dtype=torch.float16), "on the CPU use float32"),
        (dict(mode="batch"), "mode must be one of offline, stream, online"),
        (dict(flow="raft"), "flow must be one of dis, network"),
        (dict(flow=object()), "flow must be dis or network or a FlowSource"),
        (dict(chunk=1), "chunk must be an integer >= 2"),
        (dict(chunk=4, overlap=4), "overlap must be smaller than chunk"),
        (dict(mode="stream", lookahead=-1), "lookahead must be an integer >= 0"),
        (dict(max_age=0), "max_age must be an integer >= 1"),
        (dict(dis_preset="slow"), "dis_preset must be one of"),
        (dict(threads=-1), "threads must be an integer >= 0"),
        (dict(fill="poisson"), "fill must be one of navier-stokes, telea, network"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            inpainter(**options)(frames, masks)
