"""The page's keyframes -> one mask per frame, by ``fused_inpaint.tracking.Tracker``.

On the page a keyframe says what the whole mask of its frame is: its boxes (one object
each) and what is painted there (one more object; painting a tracked frame starts from
its tracked mask, so erasing a part that drifted removes it, and erasing all of it says
the object is not there). So each frame takes all its
objects from the nearest keyframe (the earlier one on a tie): every keyframe is tracked
forward and backward over the frames nearer to it than to any other. The studio tracks
without dilation (the overlay shows the object itself) and grows the hole when it inpaints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fused_inpaint.tracking import DEFAULT_DILATE, Tracker, unmasked_spans
from fused_inpaint.tracking.keyframes import as_keyframes, check_size

__all__ = ["DEFAULT_DILATE", "Keyframe", "checked", "track", "unmasked_spans"]


@dataclass
class Keyframe:
    """boxes: (x, y, w, h) in pixels; painted: (H, W) bool or None."""

    boxes: list[tuple[int, int, int, int]]
    painted: np.ndarray | None


def checked(keyframes: dict[int, Keyframe], size: tuple[int, int], count: int) -> dict:
    """{frame: {object: box or painted mask}} for Tracker, checked against ``count``
    frames of ``size`` (H, W); a keyframe painted and then erased to nothing is {} (no
    object near it). ValueError (one line) for a zero-size box, a box outside the frame,
    a keyframe that marks nothing or one past the end."""
    objects = {}
    for index, key in sorted(keyframes.items()):
        if index >= count:
            raise ValueError(f"keyframe {index} is past the end of the clip ({count} frames)")
        if not key.boxes and key.painted is None:
            raise ValueError(f"frame {index} marks nothing: draw a box or paint the object")
        painted = [key.painted] if key.painted is not None and key.painted.any() else []
        objects[index] = dict(enumerate([*key.boxes, *painted]))
    if not objects:
        raise ValueError("nothing to track: draw a box or paint the object on a frame first")
    marked = as_keyframes({k: v for k, v in objects.items() if v}) if any(objects.values()) else {}
    check_size(marked, size)
    return {index: marked.get(index, {}) for index in objects}


def track(
    frames: np.ndarray, keyframes: dict, done: Callable[[], None] = lambda: None
) -> np.ndarray:
    """frames: (T, H, W, 3) uint8, ``keyframes`` from ``checked`` -> (T, H, W) bool;
    ``done()`` is called after each frame's mask."""
    keys = sorted(keyframes)
    # The first frame each keyframe gives: the frames past the midpoint to the one before.
    firsts = [0] + [(a + b) // 2 + 1 for a, b in zip(keys[:-1], keys[1:], strict=True)]
    lasts = [first - 1 for first in firsts[1:]] + [len(frames) - 1]
    masks = np.zeros(frames.shape[:3], bool)
    for key, first, last in zip(keys, firsts, lasts, strict=True):
        if not keyframes[key]:  # erased: no object on these frames
            for _ in range(first, last + 1):
                done()
            continue
        tracker = Tracker({key - first: keyframes[key]}, dilate=0, window=None)
        for index, mask in enumerate(tracker.stream(frames[first : last + 1]), first):
            masks[index] = mask
            done()
    return masks
