"""Objects' masks through a clip from a box or a few strokes on one or more keyframes.

``track(frames, boxes=[(x, y, w, h)])`` returns (T, H, W) bool, the mask of every frame;
``track_objects`` the same per object; ``Tracker`` streams them in a bounded window. How
masks are made and carried: ``tracker.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fused_inpaint.tracking.keyframes import from_arguments
from fused_inpaint.tracking.tracker import (
    DEFAULT_DILATE,
    DEFAULT_DILATE_TEXT,
    DEFAULT_WINDOW,
    DILATE_SIDE,
    Tracker,
    default_dilate,
)


def track_objects(
    frames: Iterable,
    boxes=None,
    seeds=None,
    frame: int = 0,
    *,
    keyframes=None,
    dilate: int | None = None,
    window: int | None = None,
    **options,
) -> np.ndarray:
    """Like ``track``, one mask per object: (N, T, H, W) bool, objects in the order of
    ``boxes`` then ``seeds`` (or of the sorted object ids of ``keyframes``)."""
    keyframes = from_arguments(boxes, seeds, frame, keyframes)
    tracker = Tracker(keyframes, dilate=dilate, window=window, **options)
    return np.stack(list(tracker.stream_objects(frames)), axis=1)


def track(
    frames: Iterable,
    boxes=None,
    seeds=None,
    frame: int = 0,
    *,
    keyframes=None,
    dilate: int | None = None,
    window: int | None = None,
    **options,
) -> np.ndarray:
    """The mask of one or more objects on every frame: (T, H, W) bool, their union.

    frames: (T, H, W, 3) uint8, or an iterable of (H, W, 3) uint8 frames. On keyframe
    ``frame``: ``boxes``, a box (x, y, w, h) in pixels or a list of boxes, one per object;
    ``seeds``, a rough (H, W) mask (nonzero on the object: strokes or an outline) or a
    list of them, one per object. Or ``keyframes``: {frame index: a box, a mask, a list of
    them, or a dict {object id: box or mask}}, one object per id across keyframes; each
    frame takes an object's mask from the nearer keyframe that names it. ``dilate``:
    pixels the mask is grown by (None: ``default_dilate`` of the frames' size, measured: a
    tight mask leaves a halo).
    ``window``: the farthest a keyframe tracks backward (None: the whole clip).
    ``options``: ``Tracker``'s (``work_side``, ``dis_preset``, ``motion``).
    """
    keyframes = from_arguments(boxes, seeds, frame, keyframes)
    tracker = Tracker(keyframes, dilate=dilate, window=window, **options)
    return np.stack(list(tracker.stream(frames)))


def unmasked_spans(masked: Sequence[bool]) -> list[tuple[int, int]]:
    """The (first, last) frame of each run of frames without a mask, from whether each
    frame's mask has a pixel: where the object went out of the frame, was hidden or was
    lost (a track picks an object up again only as it comes back in over an edge it went
    out by: elsewhere, a keyframe where it is back does)."""
    empty = np.concatenate([[False], ~np.asarray(masked, bool), [False]])
    edges = np.flatnonzero(np.diff(empty.view(np.int8)))
    starts, stops = edges[::2], edges[1::2]
    return [(int(first), int(stop) - 1) for first, stop in zip(starts, stops, strict=True)]


__all__ = [
    "DEFAULT_DILATE",
    "DEFAULT_DILATE_TEXT",
    "DEFAULT_WINDOW",
    "DILATE_SIDE",
    "Tracker",
    "default_dilate",
    "track",
    "track_objects",
    "unmasked_spans",
]
