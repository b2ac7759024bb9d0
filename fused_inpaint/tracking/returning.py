"""An object that went out of the frame, looked for as it comes back in (``coming_in``).

Along the edges the object went out by, as far in as it may move in a frame, the pixels
that move otherwise than most of the frame does, in colours the object had when last
wholly inside the frame (``Inside``), in a part that touches such an edge and moves in
over it, are what may be it coming back, with what of them is farther in; ``Tracker``
takes such a part once it grows from one frame to the next, when GrabCut's cut of it has
the object's colours and texture. Colours alone found look-alikes as often as the object
on synthetic clips (another object of its texture, the black beyond a camera's view); what
does not move its own way, comes in elsewhere or only passes along the edge is not taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from fused_inpaint.tracking.motion import DISTINCT_MOTION, MIN_SEARCH, SEARCH, affine_residual
from fused_inpaint.tracking.segment import MODEL_SAMPLES, ColourModels

# A colour is one the object has when its mixture's density there is at least that of the
# OWN_COLOURS quantile of the object's own pixels (the background's mixture, learnt where
# the object last was, says nothing of where it comes back).
OWN_COLOURS = 0.05
# A cut is the object when at least this share of its pixels have colours it has.
ALIKE_SHARE = 0.5
# What may be the object coming back is taken for it once it has grown by this factor from
# one frame to the next, as a thing coming in does (a look-alike that passes along the edge
# or comes in elsewhere, on synthetic clips, did not). What is measured is the whole part,
# farther in too: an object coming in fast grew by 9% from one frame to the next (within
# the edge's reach, by -3%), and 1.2 was never met.
COMING_GROWTH = 1.05
# A cut whose median gradient is under this (grey levels a pixel) is not the object: DIS
# spreads the motion at a flat region's border into it (the black beyond a panning
# camera's view, a letterbox bar), which then seems to move in, and grows as the view pans.
FLAT_GRADIENT = 0.5


@dataclass
class Inside:
    """An object as it was on the last frame it was cut on wholly inside the frame: its
    colour models and (n, 3) uint8 of its pixels (going out, what is left of it, and what it
    leaves behind, is too little to know it by)."""

    models: ColourModels
    pixels: np.ndarray

    @classmethod
    def of(cls, models: ColourModels, pixels: np.ndarray) -> Inside:
        """From the object's ``models`` and pixels (n, 3) uint8, of which MODEL_SAMPLES kept."""
        return cls(models, pixels[:: max(1, len(pixels) // MODEL_SAMPLES)])

    @cached_property
    def floor(self) -> float:
        """The log density of the object's mixture at the OWN_COLOURS quantile of its pixels
        (infinite when none is known: no colour is then its own)."""
        if not len(self.pixels):
            return math.inf
        own, _ = self.models.densities(self.pixels)
        return float(np.quantile(own, OWN_COLOURS))

    def own_colours(self, pixels: np.ndarray) -> np.ndarray:
        """(n,) bool: whether the colours ``pixels`` (n, 3) uint8 are ones the object has."""
        own, _ = self.models.densities(pixels)
        return own >= self.floor

    def looks_alike(self, pixels: np.ndarray) -> bool:
        """Whether ALIKE_SHARE of ``pixels`` (n, 3) uint8 have colours the object has."""
        return bool(len(pixels)) and self.own_colours(pixels).mean() >= ALIKE_SHARE


def coming_reach(area: float) -> int:
    """Pixels in from the frame's edges that an object of ``area`` pixels may come in by
    between two frames (``search_window``'s margin)."""
    return max(MIN_SEARCH, round(SEARCH * math.sqrt(area)))


def edge_strip(size: tuple[int, int], reach: int) -> np.ndarray:
    """(h, w) bool: the pixels within ``reach`` of the edges of a frame of ``size`` (h, w)."""
    strip = np.zeros(size, bool)
    strip[:reach] = strip[-reach:] = True
    strip[:, :reach] = strip[:, -reach:] = True
    return strip


def coming_in(
    image: np.ndarray,
    flow: np.ndarray,
    inside: Inside,
    exits: tuple[bool, ...],
    reach: int,
    least: float,
) -> np.ndarray | None:
    """(h, w) bool: the largest part coming in over the edge of the frame ``image`` (h, w,
    3) uint8 (touching it, within ``reach`` pixels of it, with the pixels of the same kind
    connected to it farther in), of the pixels whose ``flow``
    (h, w, 2), to the frame before, is at least DISTINCT_MOTION from the motion of most of
    the frame (an affine motion fitted robustly to all of it) and whose colours the object
    has (``inside``); None when none has ``least`` pixels. A part comes in when it moves
    inward by DISTINCT_MOTION against the frame, away from an edge it touches of those the
    object went out over (``exits``: top, bottom, left, right): a thing of the object's
    colours that sways or passes along the edge, or comes in elsewhere, is not it."""
    residual = affine_residual(flow, np.ones(image.shape[:2], bool))
    if residual is None:
        return None
    maybe = np.hypot(*residual) >= DISTINCT_MOTION
    maybe[maybe] = inside.own_colours(image[maybe])
    near = maybe & edge_strip(image.shape[:2], max(1, reach))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(near.view(np.uint8), connectivity=8)
    for part in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:  # the largest first
        if stats[part, cv2.CC_STAT_AREA] < least:
            return None
        if _moves_inward(labels == part, residual, exits):
            # With what of it is already farther in: what comes in keeps growing until it
            # is in whole, while its part near the edge stops growing once it is deeper.
            _, whole = cv2.connectedComponents(maybe.view(np.uint8), connectivity=8)
            return whole == whole[labels == part][0]  # the part lies in one of them
    return None


def _moves_inward(
    part: np.ndarray, residual: tuple[np.ndarray, np.ndarray], edges: tuple[bool, ...]
) -> bool:
    """Whether ``part`` (h, w) bool touches one of the frame's ``edges`` (top, bottom, left,
    right) and moves away from it by DISTINCT_MOTION against the frame (``residual``, (dx,
    dy): the flow to the frame before less the frame's, which points back to where the part
    was)."""
    dx, dy = (float(np.median(r[part])) for r in residual)
    sides = (part[0], part[-1], part[:, 0], part[:, -1])
    inwards = (-dy, dy, -dx, dx)
    return any(
        edge and side.any() and inward >= DISTINCT_MOTION
        for edge, side, inward in zip(edges, sides, inwards, strict=True)
    )


def textured(gray: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the pixels of ``gray`` (h, w) uint8 where ``mask`` (h, w) bool holds have a
    median gradient of at least FLAT_GRADIENT grey levels a pixel."""
    across, down = (cv2.Sobel(gray, cv2.CV_32F, dx, 1 - dx, ksize=3) for dx in (1, 0))
    return float(np.median(np.hypot(across, down)[mask])) / 8 >= FLAT_GRADIENT
