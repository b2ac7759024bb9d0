"""Synthetic training clips with exact flow, after FlyingChairs and FlyingThings.

A background still moved by a random camera (a homography over time), with foreground
layers cut from other stills in random shapes, each on its own path and occluding each
other. Holes are moving or static strokes and blobs, or an object to remove: a further
layer on top, whose dilated shape is the hole and which the ground truth does not show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.data.layers import Layer, flow_between, render
from fused_inpaint.data.masks import blob, dilate, hole_layer, limbed, render_holes
from fused_inpaint.data.motion import affine_path, camera_path
from fused_inpaint.data.stills import default_stills


@dataclass(frozen=True)
class ClipConfig:
    """What the generator draws from. Speeds are fractions of the frame's longer side per
    frame; probabilities are per clip."""

    length: int = 5
    height: int = 64
    width: int = 64
    max_foreground: int = 3
    camera_speed: float = 0.06
    object_speed: float = 0.08
    object_removal: float = 0.3
    static_hole: float = 0.2
    seed: int = 0


def crop_still(
    still: torch.Tensor, size: tuple[int, int], rng: np.random.Generator
) -> torch.Tensor:
    """A random crop of ``still`` with the aspect of ``size`` (h, w), resized to it."""
    (h, w), (sh, sw) = size, still.shape[1:]
    fit = min(sh / h, sw / w)
    scale = fit * rng.uniform(0.35, 1.0)
    ch, cw = max(2, min(sh, round(h * scale))), max(2, min(sw, round(w * scale)))
    y, x = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    crop = still[None, :, y : y + ch, x : x + cw]
    return F.interpolate(crop, size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)


# The range of foreground objects' sides, as fractions of the frame's shorter side.
OBJECT_SIDES = (0.25, 0.6)


def pick_still(stills, rng: np.random.Generator) -> torch.Tensor:
    return stills[rng.integers(len(stills))]


def _scene(config: ClipConfig, stills, rng: np.random.Generator, shape=blob, sides=OBJECT_SIDES):
    """The clip's layers (a background moved by the camera, then foregrounds of ``shape``,
    their sides drawn from ``sides``) and the function that draws one more foreground
    layer, from ``rng``."""
    stills = stills if stills is not None else default_stills()
    length, height, width = config.length, config.height, config.width
    longer = max(height, width)
    canvas = (round(1.5 * height), round(1.5 * width))
    speed = rng.uniform(0, config.camera_speed) * longer
    layers = [Layer(crop_still(pick_still(stills, rng), canvas, rng), torch.ones(canvas),
                    camera_path(length, canvas, (height, width), rng, speed))]  # fmt: skip

    def foreground() -> Layer:
        side = max(4, round(rng.uniform(*sides) * min(height, width)))
        speed = rng.uniform(0, config.object_speed) * longer
        return Layer(
            crop_still(pick_still(stills, rng), (side, side), rng),
            shape(side, rng),
            affine_path(length, (side, side), (height, width), rng, speed),
        )

    layers += [foreground() for _ in range(rng.integers(0, config.max_foreground + 1))]
    return layers, foreground


def make_clip(index: int, config: ClipConfig, stills=None) -> dict[str, torch.Tensor]:
    """Clip ``index`` of the stream ``config`` describes (the same for the same arguments).

    Returns frames (T, 3, H, W) in [0, 1] as filmed; target (T, 3, H, W), the ground truth;
    holes (T, 1, H, W) in {0, 1}; the target's exact flows between adjacent frames,
    flow_forward (T-1, 2, H, W) from t to t+1 on t's grid and flow_backward from t+1 to t
    on t+1's grid, in pixels; valid_forward, valid_backward (T-1, 1, H, W) in {0, 1},
    where each flow is in frame and not occluded.
    """
    rng = np.random.default_rng([config.seed, index])
    layers, foreground = _scene(config, stills, rng)
    height, width, length = config.height, config.width, config.length
    target, owner = render(layers, height, width)
    if rng.random() < config.object_removal:
        removed = foreground()
        frames, _ = render(layers + [removed], height, width)
        holes = dilate(render_holes([removed], height, width), int(rng.integers(1, 4)))
    else:
        frames = target
        moving = rng.random() >= config.static_hole
        count = rng.integers(1, 3)
        holes = render_holes(
            [hole_layer(length, height, width, rng, moving) for _ in range(count)], height, width
        )
    forward = [flow_between(layers, owner, t, t + 1) for t in range(length - 1)]
    backward = [flow_between(layers, owner, t + 1, t) for t in range(length - 1)]
    return {
        "frames": frames,
        "target": target,
        "holes": holes[:, None].float(),
        "flow_forward": torch.stack([f for f, _ in forward]),
        "flow_backward": torch.stack([f for f, _ in backward]),
        "valid_forward": torch.stack([v for _, v in forward])[:, None].float(),
        "valid_backward": torch.stack([v for _, v in backward])[:, None].float(),
    }


# Objects' shapes: "blob", a smooth blob; "limbed", a blob with thin limbs.
OBJECT_SHAPES = {"blob": blob, "limbed": limbed}


@dataclass(frozen=True)
class ObjectRemovalClip:
    """frames (T, H, W, 3) uint8 as filmed; mask (T, H, W) bool, exactly the object's
    pixels; background (T, H, W, 3) uint8, the clip without the object; box (x, y, w, h),
    the object's bounding box in frame 0."""

    frames: np.ndarray
    mask: np.ndarray
    background: np.ndarray
    box: tuple[int, int, int, int]


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) in [0, 1] -> (T, H, W, 3) uint8, contiguous as a decoder gives it."""
    frames = (video * 255).round().clamp(0, 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 1).contiguous().numpy()


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h): the bounding box of ``mask`` (H, W) bool, not empty."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1


def object_removal_clip(
    seed: int,
    length: int = 60,
    height: int = 240,
    width: int = 432,
    camera_speed: float = 0.01,
    object_speed: float = 0.02,
    stills=None,
    shape: str = "blob",
    object_side: tuple[float, float] = OBJECT_SIDES,
    footage: np.ndarray | None = None,
) -> ObjectRemovalClip:
    """A clip with one object on top of everything else, its exact mask and the clip
    without it (the same for the same arguments). Speeds are fractions of the frame's
    longer side per frame (slower by default than training clips, whose objects leave the
    frame within a few frames); the object also turns and grows or shrinks. ``shape``:
    the objects' (the removed one's and the others'), a key of OBJECT_SHAPES.
    ``object_side``: the range of their canvases' sides, as fractions of the frame's
    shorter side (the object fills about half of its canvas). ``footage``: (T, H, W, 3)
    uint8 frames as filmed, on which the object moves instead of on a photo moved by a
    camera among other objects (the clip's length and size are then the footage's): what
    the object is laid on moves, blurs and is noisy as real video is."""
    if shape not in OBJECT_SHAPES:
        raise ValueError(f"shape must be one of {sorted(OBJECT_SHAPES)}, got {shape!r}")
    low, high = object_side
    if not 0 < low <= high:
        raise ValueError(f"object_side must be (low, high) with 0 < low <= high, got {object_side}")
    if footage is not None:
        footage = np.asarray(footage)
        if footage.ndim != 4 or footage.shape[3] != 3 or footage.dtype != np.uint8:
            raise ValueError(
                f"footage must be (T, H, W, 3) uint8, got {footage.dtype} {footage.shape}"
            )
        length, height, width = footage.shape[:3]
    config = ClipConfig(length, height, width, camera_speed=camera_speed,
                        object_speed=object_speed, seed=seed)  # fmt: skip
    rng = np.random.default_rng([seed, length, height, width])
    layers, foreground = _scene(config, stills, rng, OBJECT_SHAPES[shape], object_side)
    removed = foreground()
    mask = render_holes([removed], height, width).numpy()
    box = bounding_box(mask[0])
    if footage is not None:
        look = to_uint8(render([removed], height, width)[0])
        return ObjectRemovalClip(np.where(mask[..., None], look, footage), mask, footage, box)
    background, _ = render(layers, height, width)
    frames, _ = render(layers + [removed], height, width)
    return ObjectRemovalClip(to_uint8(frames), mask, to_uint8(background), box)


class SyntheticClips(torch.utils.data.Dataset):
    """Map-style view of the endless clip stream: item ``i`` is ``make_clip(i, config)``."""

    def __init__(self, config: ClipConfig, stills=None):
        self.config = config
        self.stills = stills

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return make_clip(index, self.config, self.stills)
