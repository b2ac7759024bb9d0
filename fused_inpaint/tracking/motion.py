"""Frames at the tracking's working scale, DIS flow between them, masks carried along it,
and the motion cue: which pixels move like the background.

Tracking runs on frames scaled down to at most WORK_SIDE pixels on their longer side,
which bounds its cost per frame whatever the video's size; masks come back to the
frames' size at the end. Flows: (h, w, 2) float32 in working pixels, (dx, dy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from fused_inpaint.ops import flow_warp
from fused_inpaint.pipeline.flow import DIS_MIN_SIDE, dis_options
from fused_inpaint.tracking.segment import fill_holes, grow, keep_touching

# Chosen with TRACK_VIEW_PIXELS on synthetic clips that no report uses: the IoU of the
# tracked masks rises with the detail tracking sees (at 854x480, from 0.82 at 320 pixels
# and 128x128 views to 0.91 at 640 and 192x192), the cost by 1.6 times.
WORK_SIDE = 640
# The object moves unlike the background when the median of its flow's distance from the
# background's motion is at least this (working pixels per frame); then its pixels
# within SAME_MOTION of the background's motion are taken for background.
DISTINCT_MOTION = 1.5
SAME_MOTION = 0.5
# The window searched for an object: its bounding box grown by SEARCH times its size (the
# square root of its area), at least MIN_SEARCH pixels, as far as it may move per frame.
SEARCH = 0.5
MIN_SEARCH = 16
# DIS finds large motions only through its pyramid: on windows much smaller than this
# (working pixels a side) it misses them.
MIN_WINDOW = 96
# The most pixels a window is looked at with, on a keyframe and on the frames tracked
# from it: larger windows are scaled down to it (a large object costs what a middling one
# does). Its border is found to a pixel of the view: the larger, the closer it hugs.
KEY_VIEW_PIXELS = 192 * 192
TRACK_VIEW_PIXELS = 192 * 192
# Flow vectors sampled for the background's motion: one every this many pixels.
SAMPLE_STEP = 4
# A pixel moves apart from the object when its flow is this far from the object's motion.
APART_MOTION = 2.0
# A pixel moves as an object does, away from the background, when its flow's distance
# from the background's motion is at least this share of the object's median one: half
# way across the flow's blur at the object's border.
MOVING_SHARE = 0.5
# An object's own motion is fitted to its pixels this far in from its border (the flow
# there mixes both sides' motions), when at least INTERIOR_PIXELS are.
INTERIOR_PIXELS = 64
# An object carried rigidly moves by a similarity (a turn, a scale and a shift) fitted to
# every pixel of its interior: an affine map fitted to a few samples would scale and
# shear it a little every frame, and that adds up. On an interior smaller than
# RIGID_PIXELS, where the flow's blur at the border reads as a change of scale, it moves
# by the median shift alone.
RIGID_PIXELS = 1000


@dataclass
class WorkFrame:
    """A window of a frame at its view's scale: rgb (h, w, 3) uint8, gray (h, w) uint8."""

    rgb: np.ndarray
    gray: np.ndarray


def work_size(size: tuple[int, int], side: int = WORK_SIDE) -> tuple[int, int]:
    """(h, w) of frames of ``size`` (H, W) at the working scale."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """image: (H, W[, C]) scaled down to (h, w) ``size``: bilinear down to half size, where
    it is ten times faster than OpenCV's area average at a fractional scale and aliases
    little; area average below, where bilinear would skip pixels."""
    if image.shape[:2] == size:
        return image
    half = 2 * size[0] >= image.shape[0] and 2 * size[1] >= image.shape[1]
    interpolation = cv2.INTER_LINEAR if half else cv2.INTER_AREA
    return cv2.resize(image, size[::-1], interpolation=interpolation)


def to_work(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """frame: (H, W, 3) uint8 -> (h, w, 3) uint8 of ``size``, contiguous."""
    return np.ascontiguousarray(shrink(frame, size))


def mask_to_work(mask: np.ndarray, size: tuple[int, int], share: float = 0.25) -> np.ndarray:
    """(H, W) bool -> (h, w) bool: a working pixel is in it when ``share`` of it is (a
    quarter by default, so that thin strokes stay)."""
    if mask.shape == size:
        return mask
    area = cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
    return area >= share


def mask_from_work(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool -> (H, W) bool, the border interpolated."""
    if mask.shape == size:
        return mask
    level = cv2.resize(mask.view(np.uint8) * 255, size[::-1], interpolation=cv2.INTER_LINEAR)
    return level > 127


Window = tuple[slice, slice]


def search_window(mask: np.ndarray) -> Window:
    """The rows and columns around ``mask`` (h, w) bool, not empty, where the object
    may be on the next frame: its bounding box grown by SEARCH times its size, at least
    MIN_SEARCH pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    margin = max(MIN_SEARCH, round(SEARCH * math.sqrt(mask.sum())))
    return tuple(
        _span(int(ends[0]) - margin, int(ends[-1]) + 1 + margin, side)
        for ends, side in ((rows, mask.shape[0]), (cols, mask.shape[1]))
    )


def _span(start: int, stop: int, side: int) -> slice:
    """[start, stop) widened about its centre to MIN_WINDOW, then moved into [0, side)."""
    length = min(max(stop - start, MIN_WINDOW), side)
    start = min(max((start + stop - length) // 2, 0), side - length)
    return slice(start, start + length)


@dataclass
class View:
    """A window of the working frames, scaled down to at most a number of pixels (a large
    object costs what a middling one does)."""

    window: Window
    scale: float
    shape: tuple[int, int]  # (h, w) at the view's scale

    @classmethod
    def of(cls, window: Window, pixels: int) -> View:
        """The view of ``window`` with at most ``pixels``."""
        h, w = (s.stop - s.start for s in window)
        scale = min(1.0, math.sqrt(pixels / (h * w)))
        return cls(window, scale, (max(1, round(h * scale)), max(1, round(w * scale))))

    def frame(self, frame: np.ndarray) -> WorkFrame:
        """The working frame's (h, w, 3) uint8 window at the view's scale."""
        rgb = shrink(frame[self.window], self.shape)
        return WorkFrame(np.ascontiguousarray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))

    def down(self, mask: np.ndarray) -> np.ndarray:
        """(h, w) bool working mask -> its window at the view's scale (half a pixel in
        it counts: a mask scaled down and up each frame neither grows nor shrinks)."""
        return mask_to_work(mask[self.window], self.shape, 0.5)

    def up(self, mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """A mask at the view's scale -> the (h, w) bool working mask of ``size``."""
        out = np.zeros(size, bool)
        out[self.window] = mask_from_work(mask, out[self.window].shape)
        return out

    def edges(self, size: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
        """Which of the view's sides (top, bottom, left, right) are edges of the working
        frames of ``size`` (h, w)."""
        rows, cols = self.window
        return rows.start == 0, rows.stop == size[0], cols.start == 0, cols.stop == size[1]

    def edges_reached(self, mask: np.ndarray, size: tuple[int, int]) -> tuple[bool, ...]:
        """Which edges (top, bottom, left, right) of the working frames of ``size`` (h, w)
        ``mask``, at the view's scale, reaches."""
        sides = (mask[0], mask[-1], mask[:, 0], mask[:, -1])
        edges = self.edges(size)
        return tuple(bool(edge and side.any()) for edge, side in zip(edges, sides, strict=True))

    def area(self, mask: np.ndarray) -> float:
        """The working pixels a mask at the view's scale covers."""
        return mask.sum() / self.scale**2


class Flow:
    """DIS optical flow between working frames (``preset``: "ultrafast", "fast" or
    "medium")."""

    def __init__(self, preset: str = "medium"):
        preset, _ = dis_options(preset, 1)
        self._dis = cv2.DISOpticalFlow_create(
            getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        )

    def __call__(self, a: WorkFrame, b: WorkFrame) -> np.ndarray:
        """The flow from ``a`` to ``b`` on ``a``'s grid, (h, w, 2) float32."""
        x, y = a.gray, b.gray
        h, w = x.shape
        pad = (0, max(DIS_MIN_SIDE - h, 0), 0, max(DIS_MIN_SIDE - w, 0))
        x, y = (cv2.copyMakeBorder(f, *pad, cv2.BORDER_REPLICATE) for f in (x, y))
        return self._dis.calc(x, y, None)[:h, :w]


def carry(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The mask (h, w) bool of a frame moved to another along ``flow``, the flow from the
    other frame to it on the other frame's grid: (h, w) bool, where more than half of a
    pixel's bilinear sample is in the mask (nothing from outside the frame)."""
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    f = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None]
    return flow_warp(x, f)[0, 0].numpy() > 0.5


def fit_affine(
    flow: np.ndarray, points: np.ndarray, step: int = SAMPLE_STEP, similarity: bool = False
) -> np.ndarray | None:
    """(2, 3) float32: the affine map x -> x + flow(x) fitted robustly (RANSAC) to the flow
    (h, w, 2) at ``points`` (h, w) bool, one every ``step`` pixels (a similarity: a turn, a
    scale and a shift, when ``similarity``); None when it cannot be fitted."""
    chosen = points[::step, ::step]
    if np.count_nonzero(chosen) < 16:
        return None
    ys, xs = np.nonzero(chosen)
    sampled = np.stack([xs, ys], axis=-1).astype(np.float32) * step
    moved = sampled + flow[::step, ::step][chosen]
    fit = cv2.estimateAffinePartial2D if similarity else cv2.estimateAffine2D
    affine, _ = fit(sampled, moved, ransacReprojThreshold=1.0)
    return None if affine is None else affine.astype(np.float32)


def affine_residual(flow: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, dy), (h, w) float32 each: each pixel's flow less the affine motion fitted
    robustly (RANSAC) to the flow at ``points`` (h, w) bool; None when it cannot be fitted."""
    affine = fit_affine(flow, points)
    if affine is None:
        return None
    h, w = points.shape
    # The affine motion's displacement, a + (A - I) (x, y), built from a row and a column.
    (a, b, c), (d, e, f) = affine
    x, y = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)[:, None]
    return flow[..., 0] - ((a - 1) * x + b * y + c), flow[..., 1] - (d * x + (e - 1) * y + f)


def _affine_distance(flow: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """(h, w) float32: each pixel's flow's distance from the affine motion fitted robustly
    (RANSAC) to the flow at ``points`` (h, w) bool; None when it cannot be fitted."""
    residual = affine_residual(flow, points)
    return None if residual is None else np.hypot(*residual)


def _interior(region: np.ndarray, margin: int) -> np.ndarray:
    """(h, w) bool: ``region`` shrunk by ``margin``, or ``region`` when too little is left."""
    inner = ~grow(~region, margin)
    return inner if inner.sum() >= INTERIOR_PIXELS else region


def carry_rigidly(
    mask: np.ndarray, flow: np.ndarray, region: np.ndarray, margin: int
) -> np.ndarray | None:
    """The mask (h, w) bool of a frame moved to another by the object's own motion
    (RIGID_PIXELS), fitted robustly to ``flow`` (the other frame to it, on the other
    frame's grid) over ``region`` (h, w) bool, ``margin`` in from its border. Unlike
    ``carry``, the flow's blur across the object's border does not grow the mask. None
    when the motion cannot be fitted."""
    inner = _interior(region, margin)
    if inner.sum() < RIGID_PIXELS:
        dx, dy = np.median(flow[inner], axis=0) if inner.any() else (0.0, 0.0)
        affine = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    else:
        affine = fit_affine(flow, inner, step=1, similarity=True)
    if affine is None:
        return None
    h, w = mask.shape
    source = mask.astype(np.float32)
    # WARP_INVERSE_MAP: the affine map takes the other frame's pixels to the mask's frame.
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(source, affine, (w, h), flags=flags) > 0.5


def object_residual(
    flow: np.ndarray, region: np.ndarray, margin: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, dy), (h, w) float32 each: each pixel's flow less the motion of the object in
    ``region`` (h, w) bool (an affine motion fitted robustly to its flow, away from its
    border, where the flow mixes both sides); None when it cannot be fitted."""
    return affine_residual(flow, _interior(region, margin))


def object_distance(flow: np.ndarray, region: np.ndarray, margin: int) -> np.ndarray | None:
    """(h, w) float32: the length of each pixel's ``object_residual``; None when the
    object's motion cannot be fitted."""
    return _affine_distance(flow, _interior(region, margin))


def distance_from_background(
    flow: np.ndarray, region: np.ndarray, margin: int
) -> np.ndarray | None:
    """(h, w) float32: each pixel's flow's distance from the background's motion, an affine
    motion fitted robustly to the flow outside ``region`` (h, w) bool grown by ``margin``;
    None when no background is left to fit."""
    if not region.any():
        return None
    return _affine_distance(flow, ~grow(region, margin))


def background_distance(
    flow: np.ndarray, region: np.ndarray, margin: int, share: float = 0.5
) -> np.ndarray | None:
    """``distance_from_background``, when at least ``share`` of the pixels of ``region``
    move otherwise (their distance at least DISTINCT_MOTION); None when they do not (or no
    background is left to fit), as then motion tells nothing."""
    distance = distance_from_background(flow, region, margin)
    if distance is None or np.quantile(distance[region], 1 - share) < DISTINCT_MOTION:
        return None
    return distance


def moving_with(
    region: np.ndarray,
    margin: int,
    distance: np.ndarray | None,
    to_object: np.ndarray | None,
    share: float = 0.5,
) -> np.ndarray | None:
    """(h, w) bool: the object in ``region`` (h, w) bool told apart by its motion alone: the
    pixels within ``margin`` of it that move away from the background as it does (their
    flow's ``distance`` (h, w) from the background's motion, the region's
    ``background_distance`` with the same ``share``, at least MOVING_SHARE of the
    distance that ``share`` of the region's pixels reach), and not
    apart from the region's own motion (``to_object`` (h, w), its ``object_distance``,
    under APART_MOTION; None: not fitted), in parts that touch it, holes filled; None when
    the region moves like the background (``distance`` None)."""
    if distance is None:
        return None
    typical = np.quantile(distance[region], 1 - share)
    moving = grow(region, margin) & (distance >= MOVING_SHARE * typical)
    if to_object is not None:
        moving &= to_object <= APART_MOTION
    return fill_holes(keep_touching(moving, region))
