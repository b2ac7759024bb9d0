"""A figure walking over a still background: a torso moving at a steady speed and two legs
taking turns, one planted (still, as the background) while the other swings at twice the
torso's speed. Limbs that move on their own are what tracking an object by its motion
against the background's, and by a graph cut that prefers short borders, finds hardest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fused_inpaint.data.clips import (
    ObjectRemovalClip,
    bounding_box,
    crop_still,
    pick_still,
    to_uint8,
)
from fused_inpaint.data.stills import default_stills

# The figure's parts as fractions of the frame: the torso's top and height, its width, the
# legs' height and width; the torso's speed (of the width, per frame). A leg swings while
# the other is planted for STEP frames, then they change.
TORSO_TOP, TORSO_HEIGHT, TORSO_WIDTH = 0.3, 0.25, 0.085
LEG_HEIGHT, LEG_WIDTH = 0.275, 0.035
SPEED = 0.007
STEP = 4


@dataclass(frozen=True)
class WalkingClip(ObjectRemovalClip):
    """An ObjectRemovalClip of a walking figure, and its legs' pixels: legs (T, H, W) bool."""

    legs: np.ndarray


def walking_figure_clip(
    seed: int, length: int = 40, height: int = 240, width: int = 432, stills=None
) -> WalkingClip:
    """A figure (torso and legs cut from photos) walking right over a still photo, its exact
    mask, its legs' and the photo alone (the same for the same arguments)."""
    stills = stills if stills is not None else default_stills()
    rng = np.random.default_rng([seed, length, height, width])
    torso_size = (round(TORSO_HEIGHT * height), max(2, round(TORSO_WIDTH * width)))
    leg_size = (round(LEG_HEIGHT * height), max(2, round(LEG_WIDTH * width)))
    background = to_uint8(crop_still(pick_still(stills, rng), (height, width), rng)[None])[0]
    torso = to_uint8(crop_still(pick_still(stills, rng), torso_size, rng)[None])[0]
    leg = to_uint8(crop_still(pick_still(stills, rng), leg_size, rng)[None])[0]
    speed = max(1, round(SPEED * width))
    top = round(TORSO_TOP * height)
    waist = top + torso_size[0]
    start = round(0.1 * width)
    feet = [start + torso_size[1] * 2 // 5, start + torso_size[1] * 9 // 10]
    frames = np.repeat(background[None], length, axis=0)
    mask = np.zeros((length, height, width), bool)
    legs = np.zeros_like(mask)
    for t in range(length):
        x = start + speed * t
        if t > 0:
            feet[(t // STEP) % 2] += 2 * speed
        for foot in feet:
            frames[t, waist : waist + leg_size[0], foot : foot + leg_size[1]] = leg
            legs[t, waist : waist + leg_size[0], foot : foot + leg_size[1]] = True
        frames[t, top:waist, x : x + torso_size[1]] = torso
        mask[t, top:waist, x : x + torso_size[1]] = True
    mask |= legs
    still = np.repeat(background[None], length, axis=0)
    return WalkingClip(frames, mask, still, bounding_box(mask[0]), legs)
