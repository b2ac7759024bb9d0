"""Optical flow between adjacent frames, from one of two sources behind one interface.

- ``DISFlow``: OpenCV's DIS (``cv2.DISOpticalFlow``), a classical estimator, on the
  frames with their holes filled smoothly; each direction of a pair a task on a pool of
  CPU threads (OpenCV releases the GIL), so on a GPU machine they overlap the GPU work.
- ``NetworkFlow``: the inpainting network's own light flow head, on the device.

Either way the flow where the estimate only guesses (in the dilated hole, and where it
points into the other frame's hole) is completed from the flow around it
(``complete_flow``), with the ops of the selected backend on the pipeline's device.
A source (``FlowSource``) has ``pair(a, b)``, which returns a
``concurrent.futures.Future`` of its estimate of the (forward, backward) flows of two
adjacent frames, each (1, 2, H, W) float32 or float16 on the pipeline's device, and
``close()``. ``FlowPair`` completes them once, on the caller's thread, as they arrive, and
keeps them in float16 on the region propagation reads (the holes and around).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.data.masks import dilate
from fused_inpaint.models import SIZE_MULTIPLE, SlimInpaintNet
from fused_inpaint.models.network import smooth_fill
from fused_inpaint.ops import flow_warp
from fused_inpaint.pipeline.filler import CLASSICAL_RADIUS, HALF_SIDE, inpaint

SOURCES = ("dis", "network")
DIS_PRESETS = ("ultrafast", "fast", "medium")
# OpenCV's DIS reads out of bounds on frames under 32 pixels on a side (seen with
# OpenCV 5.0 on 12x40, 16x88, 24x100): smaller frames are padded up to this.
DIS_MIN_SIDE = 32
# The radius of the Navier-Stokes fill of the hole in the frames DIS sees (``inpaint``'s).
DIS_FILL_RADIUS = CLASSICAL_RADIUS
# A region whose shorter side is at least DIS_HALF_SIDE is filled at half resolution but
# near its border (``filler.inpaint``). Halving from 128 pixels instead halved the fill's
# cost at 854x480 (11 to 5.4 ms a frame, 3% of the pipeline's time) but raised DIS's
# error around the hole on every set of synthetic clips (bench_flow_completion).
DIS_HALF_SIDE = HALF_SIDE
# Pixels around the hole whose estimate is replaced too: DIS's patches (8 to 12 pixels)
# that overlap the hole see the fill, not the scene. Where the hole moves between the two
# frames, its fill moves with it, and DIS's coarse levels pull the flow around the hole
# that way, farther out the farther it moves (a hole moving 16 pixels a frame at 1080p
# bent the flow up to 30 pixels out, and the forward-backward test then stopped
# propagation in two thirds of the hole): the band widens by MOVING_MARGIN pixels per
# pixel the hole moved, up to MAX_MARGIN of the frame's longer side (farther than that a
# hole does not move, it appears). A thin hole's fill is thin too and bends the flow less
# far (a stroke crossing the frame lost up to 2.8 dB at 1920x1080 to a band as wide as
# its motion, where an object passing beside it had its flow replaced): the band is at
# most THIN_MARGIN times the hole's inradius.
COMPLETION_MARGIN = 4
MOVING_MARGIN = 1.25
MAX_MARGIN = 0.05
THIN_MARGIN = 0.5
# Pixels of context a smooth fill reads around a hole's box, besides half its size.
FILL_MARGIN = 16
# A smooth fill is computed at half resolution, again and again while the region's
# shorter side is at least this (``residual_fill``): at 1080p the full-resolution fill
# cost the completion four times as much. Twice this (ns-512 in bench_flow_completion)
# gained 0.11 dB in the hole at 854x480 and 0.28 dB at 1920x1080, for 8% and 3% more
# of the pipeline's time.
HALF_FILL_SIDE = 256
# Pixels the frame's affine motion is fitted on, at most (a regular subsample).
FIT_SAMPLES = 16384
# Completed flows are kept in float16: 0.03 pixels apart at 64 pixels of motion.
FLOW_DTYPE = torch.float16
# Temporal completion (``carried_in``): the flow in a hole carried from the frames
# before where they saw the region, kept where it differs from the spatial completion
# by more than TEMPORAL_GATE pixels, found in CARRY_STEPS fixed-point steps from the
# strongest relative motion within OBJECT_REACH pixels.
TEMPORAL_GATE = 1.0
CARRY_STEPS = 6
OBJECT_REACH = 4


Box = tuple[int, int, int, int]  # (top, bottom, left, right), bottom and right exclusive


def bounding_box(mask: torch.Tensor) -> Box | None:
    """The box around the nonzero pixels of ``mask`` (..., H, W), None when there are none."""
    planes = mask.reshape(-1, *mask.shape[-2:])
    rows = planes[0] if len(planes) == 1 else planes.any(dim=0)
    if rows.device.type == "cpu" and rows.numel() > 0:
        # OpenCV's scan of a uint8 image: torch's reductions of a bool mask along either
        # axis took 16 times as long (0.7 ms against 0.04 at 854x480).
        plane = np.ascontiguousarray(rows.numpy()).view(np.uint8)
        left, top, width, height = cv2.boundingRect(plane)
        return (top, top + height, left, left + width) if width else None
    ys = rows.any(dim=1).nonzero()
    if len(ys) == 0:
        return None
    xs = rows.any(dim=0).nonzero()
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def grown(box: Box, margin: int, height: int, width: int) -> Box:
    """``box`` grown by ``margin`` pixels on every side, within a frame of height x width."""
    top, bottom, left, right = box
    return (
        max(top - margin, 0), min(bottom + margin, height),
        max(left - margin, 0), min(right + margin, width),
    )  # fmt: skip


def moved(box: Box, down: int, right: int) -> Box:
    """``box`` moved ``down`` and ``right`` pixels (negative: up, left): from a region's
    coordinates into the frame's, or back."""
    return box[0] + down, box[1] + down, box[2] + right, box[3] + right


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def intersection(a: Box, b: Box) -> Box | None:
    """The pixels in both boxes, None when they share none."""
    box = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return box if box[0] < box[1] and box[2] < box[3] else None


def window(box: Box) -> tuple:
    """The index of ``box`` in a (..., H, W) tensor or array."""
    return ..., slice(box[0], box[1]), slice(box[2], box[3])


@dataclass(eq=False)
class FrameInput:
    """One frame as the flow sources and the sweeps see it, held once: ``image`` is on the
    CPU a view of ``rgb``, ``hole_t`` of ``hole``."""

    rgb: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) bool
    image: torch.Tensor  # (1, 3, H, W) uint8 on the device
    hole_t: torch.Tensor  # (1, 1, H, W) bool on the device
    _box: tuple | None = field(default=None, init=False, repr=False)
    _grown: tuple | None = field(default=None, init=False, repr=False)
    _inradius: float | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, rgb: np.ndarray, hole: np.ndarray, device: torch.device) -> FrameInput:
        """The frame ``rgb`` (H, W, 3) uint8, C-contiguous and writable, with its ``hole``
        (H, W) bool; on the CPU the tensors are views of the arrays."""
        image = torch.from_numpy(rgb).to(device).permute(2, 0, 1)[None]
        return cls(rgb, hole, image, torch.from_numpy(hole).to(device)[None, None])

    @property
    def box(self) -> Box | None:
        """The box around the hole, None without one; found once."""
        if self._box is None:
            self._box = (bounding_box(self.hole_t),)
        return self._box[0]

    @property
    def inradius(self) -> float:
        """The farthest a pixel of the hole lies from every pixel outside it (0 without a
        hole); found once."""
        if self._inradius is None:
            self._inradius = 0.0
            if self.box is not None:  # padded: the box's edge is outside the hole
                inside = np.pad(self.hole[window(self.box)[1:]], 1).view(np.uint8)
                distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5)
                self._inradius = float(distance.max())
        return self._inradius

    def grown_hole(self, margin: int) -> tuple[torch.Tensor, Box | None]:
        """(the hole grown by ``margin`` (1, 1, H, W) bool, its box); by COMPLETION_MARGIN
        (a still hole's) found once."""
        if margin == COMPLETION_MARGIN and self._grown is not None:
            return self._grown
        height, width = self.hole.shape
        box = self.box and grown(self.box, margin, height, width)
        mask = torch.zeros_like(self.hole_t)
        if box is not None:  # dilated on the grown box only: nothing beyond it is reached
            mask[window(box)] = dilate(self.hole_t[window(box)], margin)
        if margin == COMPLETION_MARGIN:
            self._grown = (mask, box)
        return mask, box


def hole_shift(a: FrameInput, b: FrameInput) -> float:
    """How far the hole moved from frame ``a`` to frame ``b``, in pixels: the farthest a
    pixel of either hole lies from the other hole (0 when either frame has none)."""
    if a.box is None or b.box is None:
        return 0.0
    region = window(union(a.box, b.box))[1:]
    farthest = 0.0
    for hole, other in ((a.hole[region], b.hole[region]), (b.hole[region], a.hole[region])):
        # The distance of every pixel to the nearest pixel of ``other`` (its zeros).
        distance = cv2.distanceTransform((~other).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        farthest = max(farthest, float(distance[hole].max()))
    return farthest


def completion_margin(a: FrameInput, b: FrameInput) -> int:
    """Pixels around the holes of frames ``a`` and ``b`` whose flow is replaced, as far as
    the hole moved between them (MOVING_MARGIN), within THIN_MARGIN of its inradius."""
    moved_by = math.ceil(MOVING_MARGIN * hole_shift(a, b))
    if moved_by <= COMPLETION_MARGIN:
        return COMPLETION_MARGIN
    cap = min(MAX_MARGIN * max(a.hole.shape), THIN_MARGIN * max(a.inradius, b.inradius))
    return max(COMPLETION_MARGIN, min(moved_by, math.ceil(cap)))


class FlowSource(Protocol):
    """What the pipeline asks of a flow source (``Inpainter(flow=...)`` takes one too)."""

    name: str

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        """Future of the estimated (forward a -> b on a's grid, backward b -> a on b's
        grid), each (1, 2, H, W) float32 or float16 on the device; called once per pair,
        in order."""
        ...

    def close(self) -> None:
        """Called when a run ends: threads and caches go."""
        ...


def resolved(value) -> Future:
    """A future that already holds ``value`` (a source that computes in place)."""
    future: Future = Future()
    future.set_result(value)
    return future


def joined(*futures: Future) -> Future:
    """A future of the tuple of ``futures``' results (or of the first exception)."""
    joint: Future = Future()
    results: list = [None] * len(futures)
    left = len(futures)
    lock = threading.Lock()

    def done(index: int, future: Future) -> None:
        nonlocal left
        with lock:
            if joint.done():
                return
            if future.cancelled():  # the source closed
                joint.cancel()
                return
            if future.exception() is not None:
                joint.set_exception(future.exception())
                return
            results[index] = future.result()
            left -= 1
            if left == 0:
                joint.set_result(tuple(results))

    for index, future in enumerate(futures):
        future.add_done_callback(lambda future, index=index: done(index, future))
    return joint


def fill_margin(box: Box) -> int:
    """Pixels of context around ``box`` that the flow's smooth fill reads: pull-push's
    coarse levels average the known pixels around the hole, the nearer the more (on
    synthetic clips, half the box's side lost 0.08 dB against the whole frame, its side
    nothing)."""
    return FILL_MARGIN + max(box[1] - box[0], box[3] - box[2])


def affine_fit(flow: torch.Tensor, known: torch.Tensor, box: Box | None = None) -> torch.Tensor:
    """The affine flow field that fits ``flow`` (N, 2, H, W) best in the least squares
    sense over the ``known`` (N, 1, H, W) bool pixels, on ``box`` (default: the frame):
    (N, 2, box height, box width) float32; zero where fewer than three are known. The fit
    reads every FIT_STEP-th pixel of each FIT_STEP-th row, in float32 on a centred basis."""
    across, down = affine_parts(flow, known, box)
    return across + down


def affine_parts(
    flow: torch.Tensor, known: torch.Tensor, box: Box | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``affine_fit`` as the two terms it sums, a plane per channel: the column term
    (N, 2, 1, box width) and the row term (N, 2, box height, 1), so that a caller can
    subtract the field without making it."""
    n, _, height, width = flow.shape
    step = max(1, round(math.sqrt(height * width / FIT_SAMPLES)))

    def basis(top: int, bottom: int, left: int, right: int, stride: int) -> torch.Tensor:
        # Centred and scaled to about [-1, 1], so that float32 sums stay exact enough.
        scale = max(height, width) / 2
        kw = dict(dtype=torch.float32, device=flow.device)
        ys = (torch.arange(top, bottom, stride, **kw) - (height - 1) / 2) / scale
        xs = (torch.arange(left, right, stride, **kw) - (width - 1) / 2) / scale
        ys, xs = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([xs, ys, torch.ones_like(xs)]).reshape(1, 3, -1)  # (1, 3, P)

    sampled = basis(0, height, 0, width, step)
    weight = known[..., ::step, ::step].reshape(n, 1, -1).float()
    values = flow[..., ::step, ::step].reshape(n, 2, -1).float()
    gram = (sampled * weight) @ sampled.transpose(1, 2)  # (N, 3, 3)
    moments = (sampled * weight) @ values.transpose(1, 2)
    solvable = (weight.sum(dim=(1, 2)) >= 3) & (torch.linalg.det(gram).abs() > 1e-9)
    eye = torch.eye(3, device=flow.device)
    coefficients = torch.linalg.solve(torch.where(solvable[:, None, None], gram, eye), moments)
    coefficients = coefficients * solvable[:, None, None]
    top, bottom, left, right = box or (0, height, 0, width)
    xs, ys = basis(top, top + 1, left, right, 1)[0, 0], basis(top, bottom, left, left + 1, 1)[0, 1]
    (cx, cy, c0) = coefficients.transpose(1, 2)[..., None, None].unbind(2)  # (N, 2, 1, 1) each
    return cx * xs + c0, cy * ys[:, None]


def pointing_into(flow: torch.Tensor, target: torch.Tensor, box: Box) -> tuple:
    """Where ``flow`` (N, 2, H, W) lands on a nonzero pixel of ``target`` (N, 1, H, W)
    bool, all of which lie in ``box``: (mask over the returned box, that box), or None.
    Only the pixels that a flow as long as the longest can carry into ``box`` are read."""
    height, width = flow.shape[-2:]
    low, high = torch.aminmax(flow)  # one pass, no |flow| copy
    reach = math.ceil(max(float(high), -float(low))) + 1
    region = window(grown(box, reach, height, width))
    crop = flow[region].float().contiguous()
    lands = flow_warp(target[region].to(crop.dtype).contiguous(), crop) > 0
    found = bounding_box(lands)
    if found is None:
        return None
    top, _, left, _ = grown(box, reach, height, width)
    return lands[window(found)], moved(found, top, left)


def complete_flow(
    flow: torch.Tensor, hole: torch.Tensor, target_hole: torch.Tensor
) -> torch.Tensor:
    """flow: (N, 2, H, W) from a frame to another; hole, target_hole: (N, 1, H, W) bool,
    the holes of the two frames. The flow where it is only a guess is replaced by the flow
    around it (``completed``)."""
    height, width = flow.shape[-2:]
    regions = []
    for mask in (hole, target_hole):
        box = bounding_box(mask)
        box = box and grown(box, COMPLETION_MARGIN, height, width)
        regions.append((dilate(mask, COMPLETION_MARGIN), box))
    return completed(flow.clone(), *regions)


@dataclass
class Guess:
    """Where ``complete`` replaced a flow: the ``box`` it changed, the pixels it guessed
    there (N, 1, h, w) bool, the frame's affine motion there as ``affine_parts``, and the
    guessed pixels over the whole frame (N, 1, H, W) bool."""

    box: Box
    guessed: torch.Tensor
    parts: tuple[torch.Tensor, torch.Tensor]
    everywhere: torch.Tensor

    @property
    def motion(self) -> torch.Tensor:
        """The frame's affine motion on ``box``: (N, 2, h, w) float32."""
        height, width = self.guessed.shape[-2:]
        return plane(self.parts, (0, height, 0, width))


def completed(flow: torch.Tensor, grown_hole: tuple, grown_target: tuple) -> torch.Tensor:
    """``flow`` completed in place (``complete``)."""
    complete(flow, grown_hole, grown_target)
    return flow


def upsampled(coarse: torch.Tensor, size: tuple[int, int], box: Box) -> torch.Tensor:
    """``F.interpolate(coarse, size, mode="bilinear", align_corners=False)[window(box)]``
    (coarse: (N, C, h, w)), computed on ``box`` only: per axis, two taps and their
    weights, as PyTorch places them. Columns first: picking elements along the last axis
    is slow, and on the coarse rows there are few (at 1080p 2.5 ms instead of 4)."""
    out = coarse
    for dim, (first, stop), length in ((-1, box[2:], size[1]), (-2, box[:2], size[0])):
        n = coarse.shape[dim]
        kw = dict(dtype=torch.float32, device=coarse.device)
        source = ((torch.arange(first, stop, **kw) + 0.5) * (n / length) - 0.5).clamp_min(0)
        low = source.long()
        high = (low + 1).clamp_max(n - 1)
        weight = (source - low).to(coarse.dtype)
        shape = [1] * out.ndim
        shape[dim] = -1
        a, b = out.index_select(dim, low), out.index_select(dim, high)
        out = torch.lerp(a, b, weight.view(shape))
    return out


def plane(parts: tuple[torch.Tensor, torch.Tensor], box: Box) -> torch.Tensor:
    """The affine field of ``affine_parts`` (on a region) on ``box`` of that region:
    (N, 2, box height, box width)."""
    across, down = parts
    return across[..., box[2] : box[3]] + down[..., box[0] : box[1], :]


def halvings(height: int, width: int) -> int:
    """How many times ``residual_fill`` halves a region of (height, width) pixels."""
    count = 0
    while min(height, width) >= max(HALF_FILL_SIDE, 2):
        height, width, count = -(-height // 2), -(-width // 2), count + 1
    return count


def residual_fill(
    flow: torch.Tensor, motion: tuple[torch.Tensor, torch.Tensor], guessed: torch.Tensor, box: Box
) -> torch.Tensor:
    """The residual of ``flow`` (N, 2, h, w) from the affine field ``motion``
    (``affine_parts`` on the same region), filled smoothly where ``guessed`` (N, 1, h, w)
    bool holds, on ``box`` (every guessed pixel lies in it): (N, 2, box height, box width)
    float32, the fill at the guessed pixels. ``smooth_fill``, from 2x2 means of the known
    pixels (where a mean has none it is filled) taken while the region's shorter side is
    at least HALF_FILL_SIDE, upsampled into the guess: the fill a hole gets is smooth, and
    at full resolution the pyramid cost a 1080p frame's completion four times as much."""
    height, width = flow.shape[-2:]
    count = halvings(height, width)
    if count == 0:
        residual = flow.float() - plane(motion, (0, height, 0, width))
        return smooth_fill(residual, guessed)[window(box)]
    # Values and support in one tensor, made in as few passes over the region as can be
    # (at 1080p they are the cost), on a region padded with nothing known to a multiple of
    # the coarse pixel: the means of halving ``count`` times, an odd end kept alone.
    n, channels, side = flow.shape[0], flow.shape[1], 1 << count
    level = flow.new_empty(
        (n, channels + 1, -(-height // side) * side, -(-width // side) * side), dtype=torch.float32
    )
    level[..., height:, :] = level[..., width:] = 0
    values, known = level[:, :channels, :height, :width], level[:, channels:, :height, :width]
    across, down = motion
    torch.logical_not(guessed, out=known)
    # Zeroed in the guess by the support, as smooth_fill does: on a CPU a masked_fill_
    # whose mask spans the channels takes 2.4 times as long as the product.
    values.copy_(flow).sub_(across).sub_(down).mul_(known)
    # Sums over blocks of side x side pixels (the ratio is the mean): the rows' in one
    # reduction, the columns' by pairs (a reduction along the last axis over a few
    # elements each is several times slower).
    level = level.view(n, channels + 1, level.shape[-2] // side, side, -1).sum(3)
    while level.shape[-1] > -(-width // side):
        pairs = level.unflatten(-1, (-1, 2))
        level = pairs[..., 0] + pairs[..., 1]
    values, support = level[:, :channels], level[:, channels:]
    coarse = smooth_fill(values / support.clamp_min(1e-30), support == 0)
    return upsampled(coarse, (height, width), box)


def complete(flow: torch.Tensor, grown_hole: tuple, grown_target: tuple) -> Guess | None:
    """``flow`` (N, 2, H, W), changed in place, where it is only a guess: in the hole grown
    by COMPLETION_MARGIN, where the estimate matched the fill rather than the scene, and
    where it points into the other frame's grown hole, whose pixels it could not match.
    The replacement is the frame's affine motion (a camera's pan, zoom or roll, exact for
    it) plus the rest filled smoothly by pull-push from the guess's neighbourhood.
    grown_hole, grown_target: (mask (N, 1, H, W) bool, its box or None) of the two frames.
    Returns where it guessed (None: nowhere)."""
    (hole, hole_box), (target, target_box) = grown_hole, grown_target
    into = target_box and pointing_into(flow, target, target_box)
    box = union(hole_box, into and into[1])
    if box is None:
        return None
    height, width = flow.shape[-2:]
    around = grown(box, fill_margin(box), height, width)
    guessed = hole[window(around)].clone()
    if into:
        guessed[window(moved(into[1], -around[0], -around[2]))] |= into[0]
    everywhere = hole.clone()  # the guess over the whole frame, for the frame's motion
    everywhere[window(around)] = guessed
    motion = affine_parts(flow, ~everywhere, around)
    # Written on the guess's box only (``box``: the grown hole's box is its dilation's,
    # ``into``'s the box of where it lands): the flow elsewhere is kept exactly as it was.
    inner = moved(box, -around[0], -around[2])
    fill = residual_fill(flow[window(around)], motion, guessed, inner)
    flow[window(box)] = torch.where(
        guessed[window(inner)], plane(motion, inner) + fill, flow[window(box)]
    )
    return Guess(around, guessed, motion, everywhere)


@dataclass
class Carried:
    """A frame's backward flow (to the frame before) as the next pair carries it: its
    residual from the frame's affine motion (1, 2, H, W) float32, and where it is known
    (1, 1, H, W) bool: estimated, or carried from a frame that saw the region."""

    residual: torch.Tensor
    known: torch.Tensor


def squared_length(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) -> (N, 1, H, W): dx² + dy² (torch's norm is several times slower)."""
    return flow[:, :1] ** 2 + flow[:, 1:] ** 2


def gated(flow: torch.Tensor, box: Box, candidate: torch.Tensor, take: torch.Tensor) -> None:
    """``flow`` (1, 2, H, W) on ``box`` set in place to ``candidate`` (1, 2, h, w) where
    ``take`` (1, 1, h, w) holds and it differs from the flow by more than TEMPORAL_GATE."""
    spatial = flow[window(box)].float()
    apart = squared_length(candidate - spatial) > TEMPORAL_GATE**2
    flow[window(box)] = torch.where(take & apart, candidate, spatial).to(flow.dtype)


def carried_in(
    before: Carried | None,
    forward: torch.Tensor,
    backward: torch.Tensor,
    forward_guess: Guess | None,
    backward_guess: Guess | None,
) -> Carried:
    """Temporal completion of a pair (a, b), after the spatial one (guesses: ``complete``'s):
    what frame a's backward flow ``before`` knows is carried in, under constant velocity
    relative to each frame's affine motion, where it differs from the spatial completion
    by more than TEMPORAL_GATE (where something moves unlike its surroundings; elsewhere
    the spatial completion was the closer on synthetic clips). ``forward`` (1, 2, H, W)
    a -> b takes minus frame a's backward flow at the same pixel; ``backward`` b -> a
    follows itself into frame a's: v <- motion + residual_a(p + v), CARRY_STEPS times from
    the strongest residual within OBJECT_REACH pixels, read at the nearest pixel (a
    bilinear read mixes an object's motion with the background's), kept where it settles.
    Both change in place; returns frame b's backward flow as the next pair carries it."""
    if before is not None and forward_guess is not None:
        box = forward_guess.box
        candidate = forward_guess.motion - before.residual[window(box)]
        gated(forward, box, candidate, forward_guess.guessed & before.known[window(box)])
    known = torch.ones_like(backward[:, :1], dtype=torch.bool)
    if backward_guess is None:
        return Carried(backward.float() - affine_fit(backward, known), known)
    motion = affine_fit(backward, ~backward_guess.everywhere)
    residual = backward.float() - motion
    region, base = backward_guess.guessed, backward_guess.motion
    known[window(backward_guess.box)] = ~region
    if before is None:
        return Carried(residual, known)
    # Only the guessed pixels and what they can reach in frame a are read.
    top, _, left, _ = backward_guess.box
    inner = bounding_box(region)
    reach = math.ceil(float(backward[window(backward_guess.box)].abs().amax())) + OBJECT_REACH + 2
    inner = grown(inner, reach, *region.shape[-2:])
    box = moved(inner, top, left)
    region, base = region[window(inner)], base[window(inner)]
    carried, seen = before.residual[window(box)], before.known[window(box)].float()
    # From the strongest relative motion around the pixel in frame a: an object's leading
    # edge, where it covers background, has both motions as fixed points, and a moving
    # object is in front more often than not.
    size = 2 * OBJECT_REACH + 1
    _, at = F.max_pool2d(squared_length(carried) * seen, size, 1, OBJECT_REACH, return_indices=True)
    strongest = carried.flatten(2).gather(2, at.flatten(2).expand(-1, 2, -1))
    value = torch.where(region, base + strongest.view_as(carried), backward[window(box)].float())
    for _ in range(CARRY_STEPS):
        value = torch.where(region, base + flow_warp(carried, value, mode="nearest"), value)
    # Only a fixed point: the trail an object leaves has none (it alternates).
    again = base + flow_warp(carried, value, mode="nearest")
    settled = squared_length(again - value) < 0.25  # within half a pixel
    reached = region & settled & (flow_warp(seen, value, mode="nearest") > 0.5)
    # The next pair carries on from the value carried here, kept or not.
    residual[window(box)] = torch.where(reached, value - motion[window(box)], residual[window(box)])
    gated(backward, box, value, reached)
    known[window(box)] |= reached
    return Carried(residual, known)


def completed_pair(
    estimate: tuple,
    a: FrameInput,
    b: FrameInput,
    temporal: bool = False,
    before: Carried | None = None,
) -> tuple:
    """A source's estimate (forward a -> b, backward b -> a) of frames (a, b), each
    (1, 2, H, W), as (forward, backward) in FLOW_DTYPE, completed in the holes: spatially
    (``complete``), then, when ``temporal``, from the frames before where they saw the
    region (``carried_in`` from ``before``, frame a's backward flow as carried); and
    frame b's backward flow as the next pair carries it (None unless ``temporal``). The
    estimate itself is left as it was."""
    flows, guesses = [], []
    margin = completion_margin(a, b)
    for flow, (x, y) in zip(estimate, ((a, b), (b, a)), strict=True):
        # Planar: DIS's flows come as (H, W, 2) arrays, and every pass over an
        # interleaved layout costs several times a planar one's.
        stored = flow.to(FLOW_DTYPE, memory_format=torch.contiguous_format)
        if stored.data_ptr() == flow.data_ptr():  # the source's own tensor
            stored = stored.clone()
        guesses.append(complete(stored, x.grown_hole(margin), y.grown_hole(margin)))
        flows.append(stored)
    if not temporal:
        return (*flows, None)
    return (*flows, carried_in(before, *flows, *guesses))


def read_box(box: Box | None, other: Box | None, other_flow: torch.Tensor) -> Box | None:
    """The part of a frame's flow to its neighbour that propagation reads: its own hole's
    ``box`` (where it carries values) and where the neighbour's hole (``other``) lands
    along the neighbour's flow ``other_flow`` (N, 2, H, W), with the sampling taps around
    (where the forward-backward test reads it)."""
    if other is None:
        return box
    height, width = other_flow.shape[-2:]
    reach = math.ceil(float(other_flow[window(other)].abs().amax())) + 2
    return union(box, grown(other, reach, height, width))


class FlowPair:
    """The flows of frames (a, b): the source's estimate, completed in the holes
    (``completed_pair``; ``temporal``: from the pair ``before`` too, so pairs complete in
    order) once, on the caller's thread, and kept in float16 (FLOW_DTYPE) on the part
    that propagation reads (``read_box``). ``estimate`` None: the pair has no flow that
    is read (``needed``)."""

    def __init__(
        self,
        estimate: Future | None,
        a: FrameInput,
        b: FrameInput,
        before: FlowPair | None = None,
        temporal: bool = False,
    ):
        self._estimate, self._frames = estimate, (a, b)
        # ((box, flow on it) or None) of each direction
        self._flows: tuple | None = None if estimate is not None else (None, None)
        self._shape, self._device = (1, 2, *a.hole.shape), a.hole_t.device
        # With ``temporal``: the pair before (frames a - 1, a), until its carried flow is
        # taken, and this pair's carried flow until the next pair takes it.
        self._temporal = temporal
        self._before, self._carried = (before if temporal else None), None

    @staticmethod
    def needed(a: FrameInput, b: FrameInput, temporal: bool) -> bool:
        """Whether propagation reads the flows of frames (a, b): where either has a hole,
        or always when flows are completed from the frames before (``temporal``: a pair
        carries its flow to the next). A clip's frames without the object cost no flow."""
        return temporal or a.box is not None or b.box is not None

    def ready(self) -> bool:
        """Whether the estimate has arrived (then ``complete`` does not wait)."""
        return self._flows is not None or self._estimate.done()

    def complete(self) -> None:
        """Completes the estimate (waiting for it) if that has not been done."""
        if self._flows is not None:
            return
        a, b = self._frames
        carried = None
        if self._before is not None:
            self._before.complete()  # in order: its carried flow is this pair's start
            carried, self._before._carried, self._before = self._before._carried, None, None
        estimate = self._estimate.result()
        forward, backward, self._carried = completed_pair(estimate, a, b, self._temporal, carried)
        kept = []
        for flow, box in ((forward, read_box(a.box, b.box, backward)),
                          (backward, read_box(b.box, a.box, forward))):  # fmt: skip
            kept.append(box and (box, flow[window(box)].clone()))
        self._flows = tuple(kept)
        self._estimate = self._frames = None

    def flows(self, out: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward, backward), each (1, 2, H, W) float32 on the device, written into
        ``out`` (two such tensors) when given: exact where propagation reads them, zero
        elsewhere (or, in ``out``, what was there)."""
        self.complete()
        if out is None:
            out = tuple(torch.zeros(self._shape, device=self._device) for _ in range(2))
        for kept, full in zip(self._flows, out, strict=True):
            if kept:
                full[window(kept[0])] = kept[1]
        return out


def dis_options(preset: str, threads: int | None) -> tuple[str, int]:
    """(preset, threads) checked, threads defaulting to the CPU count, at most 8 (0: on
    the calling thread)."""
    if preset not in DIS_PRESETS:
        raise ValueError(f"dis_preset must be one of {', '.join(DIS_PRESETS)}; got {preset!r}")
    if threads is None:
        threads = min(os.cpu_count() or 1, 8)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be an integer >= 0, got {threads!r}")
    return preset, threads


class OnCallingThread:
    """An executor that runs each task as it is submitted, on the caller's thread."""

    def submit(self, task: Callable, *args) -> Future:
        future = Future()
        try:
            future.set_result(task(*args))
        except Exception as error:  # raised where the result is read, as from a pool
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class DISFlow:
    """DIS optical flow on CPU threads. ``preset``: "ultrafast", "fast" or "medium";
    ``threads``: flows (each direction of a pair) computed at once on threads of their
    own, overlapping the rest of the pipeline (default: the CPU count, at most 8); 0: one
    at a time on the calling thread, so that the process keeps to one CPU (a batch worker
    of one CPU)."""

    name = "dis"

    def __init__(self, device: torch.device, preset: str = "medium", threads: int | None = None):
        preset, threads = dis_options(preset, threads)
        self._cv2 = cv2
        self._preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        self.device = device
        self.preset, self.threads = preset, threads
        self._local = threading.local()  # a DIS object is not thread-safe: one per thread
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="fused-inpaint-dis")
            if threads
            else OnCallingThread()
        )
        self._last: tuple[FrameInput, Future] | None = None  # the newest frame's gray

    def _dis(self):
        if not hasattr(self._local, "dis"):
            self._local.dis = self._cv2.DISOpticalFlow_create(self._preset)
        return self._local.dis

    def _gray(self, frame: FrameInput) -> np.ndarray:
        """The frame in grayscale with its hole filled by OpenCV's Navier-Stokes
        inpainting (a blank hole would be an edge that DIS follows; a large one filled at
        a lower resolution inside, ``filler.inpaint``), padded up to DIS_MIN_SIDE. On
        synthetic clips with exact flow it beat a smooth pull-push fill: DIS's error
        within 8 pixels of the hole 0.27 px instead of 0.30, the pipeline's PSNR in the
        hole 0.8 dB higher (``benchmarks/bench_flow_completion.py``)."""
        gray = self._cv2.cvtColor(frame.rgb, self._cv2.COLOR_RGB2GRAY)
        rows, columns = np.flatnonzero(frame.hole.any(1)), np.flatnonzero(frame.hole.any(0))
        if len(rows):  # filled on what the fill reads: the hole and its radius around
            margin = DIS_FILL_RADIUS + 2
            top, left = max(rows[0] - margin, 0), max(columns[0] - margin, 0)
            region = slice(top, rows[-1] + 1 + margin), slice(left, columns[-1] + 1 + margin)
            hole = np.ascontiguousarray(frame.hole[region]).view(np.uint8)
            gray[region] = inpaint(gray[region], hole, self._cv2.INPAINT_NS, DIS_HALF_SIDE)
        height, width = gray.shape
        pad = (0, max(DIS_MIN_SIDE - height, 0), 0, max(DIS_MIN_SIDE - width, 0))
        return self._cv2.copyMakeBorder(gray, *pad, self._cv2.BORDER_REPLICATE)

    def _grays(self, frame: FrameInput) -> Future:
        """Future of ``_gray(frame)``, made once per frame: each frame is in two pairs."""
        if self._last is None or self._last[0] is not frame:
            self._last = (frame, self._pool.submit(self._gray, frame))
        return self._last[1]

    def _estimate(self, a: Future, b: Future, height: int, width: int) -> torch.Tensor:
        """The flow from frame a to frame b (their grays' futures) on a's grid."""
        gray_a, gray_b = a.result(), b.result()  # submitted before this task: no deadlock
        flow = self._dis().calc(gray_a, gray_b, None)[:height, :width]
        return torch.from_numpy(flow).permute(2, 0, 1)[None].to(self.device)

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        """Future of (forward a -> b on a's grid, backward b -> a on b's grid), estimated as
        two tasks: where the pipeline waits for each pair (online and stream modes), the
        two directions take two threads at once."""
        gray_a, gray_b = self._grays(a), self._grays(b)
        shape = a.hole.shape
        return joined(
            self._pool.submit(self._estimate, gray_a, gray_b, *shape),
            self._pool.submit(self._estimate, gray_b, gray_a, *shape),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._last = None


class NetworkFlow:
    """The network's flow head (``SlimInpaintNet.pair_flows``) on the device, each frame
    encoded once."""

    name = "network"

    def __init__(self, network: SlimInpaintNet, dtype: torch.dtype):
        self.network, self.dtype = network, dtype
        self._cache: tuple[FrameInput, object] | None = None

    def _features(self, frame: FrameInput):
        if self._cache is not None and self._cache[0] is frame:
            return self._cache[1]
        h, w = frame.hole.shape
        pad = (0, -w % SIZE_MULTIPLE, 0, -h % SIZE_MULTIPLE)
        image = F.pad(frame.image.to(self.dtype) / 127.5 - 1, pad, mode="replicate")
        hole = F.pad(frame.hole_t.to(self.dtype), pad)
        features = self.network.encode_frame(image, hole)
        self._cache = (frame, features)
        return features

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        features_a = self._features(a)
        forward, backward = self.network.flows(features_a, self._features(b))
        h, w = a.hole.shape
        return resolved((forward[..., :h, :w].float(), backward[..., :h, :w].float()))

    def close(self) -> None:
        self._cache = None
