"""What the user says about the objects: keyframes with a box or a rough mask per object,
checked, each error one line naming what is wrong.

Keyframes: {frame index: objects}, objects being a box (x, y, w, h) in pixels, an (H, W)
mask (nonzero on the object; strokes or a rough outline), a list of those (object i is
the i-th), or a dict {object id: box or mask}. The same object id on several keyframes is
the same object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

Box = tuple[int, int, int, int]
Hint = Box | np.ndarray  # a box, or an (H, W) bool mask


def as_box(value, name: str) -> Box:
    """(x, y, w, h), four finite numbers rounded to pixels, w and h > 0."""
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a box (x, y, w, h), got {value!r}") from None
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{name} must be a box of four finite numbers (x, y, w, h), got {value!r}")
    x, y, w, h = (round(v) for v in numbers)
    if w <= 0 or h <= 0:
        raise ValueError(f"{name} {(x, y, w, h)} is empty: its width and height must be > 0")
    return x, y, w, h


def clip_box(box: Box, size: tuple[int, int], name: str) -> Box:
    """The part of ``box`` inside frames of ``size`` (H, W); none is an error."""
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, size[1]), min(y + h, size[0])
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"{name} {box} lies outside the frame ({size[1]}x{size[0]} pixels, x, y from 0)"
        )
    return x0, y0, x1 - x0, y1 - y0


def _as_hint(value, name: str) -> Hint:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim == 2:
        if value.dtype.kind == "f" and np.isnan(value).any():
            raise ValueError(f"{name} holds NaN: a mask is nonzero on the object, zero elsewhere")
        mask = value != 0
        if not mask.any():
            raise ValueError(f"{name} is empty: it marks no pixel of the object")
        return mask
    return as_box(value, name)


def _is_single(value) -> bool:
    """Whether ``value`` is one box or one mask rather than a list of them."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim == 2 or (value.ndim == 1 and len(value) == 4)
    return isinstance(value, Sequence) and len(value) == 4 and all(np.isscalar(v) for v in value)


def as_keyframes(keyframes: Mapping) -> dict[int, dict[int, Hint]]:
    """keyframes checked: {frame: {object id: box or (H, W) bool mask}}, frames sorted."""
    if not isinstance(keyframes, Mapping) or not keyframes:
        raise ValueError(f"keyframes must be a non-empty dict {{frame: boxes}}, got {keyframes!r}")
    checked = {}
    for frame in sorted(keyframes, key=lambda k: (not isinstance(k, int), k)):
        if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or frame < 0:
            raise ValueError(f"keyframe indices must be integers >= 0, got {frame!r}")
        objects = keyframes[frame]
        if _is_single(objects):
            objects = [objects]
        if not isinstance(objects, Mapping):
            objects = dict(enumerate(objects))
        if not objects:
            raise ValueError(f"keyframe {frame} names no object")
        checked[int(frame)] = {
            int(obj): _as_hint(hint, f"the object {obj} on frame {frame}")
            for obj, hint in objects.items()
        }
    return checked


def from_arguments(boxes, seeds, frame: int, keyframes) -> dict[int, dict[int, Hint]]:
    """The keyframes of ``track``'s arguments: ``keyframes``, or ``boxes`` (one box or a
    list) and ``seeds`` (one (H, W) mask or a list), objects in that order, on ``frame``."""
    if keyframes is not None:
        if boxes is not None or seeds is not None:
            raise ValueError("give keyframes, or boxes and seeds on one frame, not both")
        return as_keyframes(keyframes)
    objects = []
    for value in (boxes, seeds):
        if value is not None:
            objects += [value] if _is_single(value) else list(value)
    if not objects:
        raise ValueError("nothing to track: give boxes, seeds or keyframes")
    if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or frame < 0:
        raise ValueError(f"frame must be an integer >= 0, got {frame!r}")
    return as_keyframes({int(frame): objects})


def check_size(keyframes: dict[int, dict[int, Hint]], size: tuple[int, int]) -> None:
    """Boxes clipped to frames of ``size`` (H, W), in place; masks of another size, or a
    box wholly outside, are errors."""
    for frame, objects in keyframes.items():
        for obj, hint in objects.items():
            name = f"the object {obj} on frame {frame}"
            if isinstance(hint, np.ndarray):
                if hint.shape != size:
                    raise ValueError(
                        f"{name} is a mask of shape {hint.shape}, the frames are {size}"
                    )
            else:
                objects[obj] = clip_box(hint, size, f"{name}: box")
