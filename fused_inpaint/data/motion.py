"""Smooth random motion: (T, 3, 3) homographies mapping a layer's pixels into frame t."""

from __future__ import annotations

import math

import numpy as np
import torch


def translation(x: float, y: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0, x], [0, 1, y], [0, 0, 1]], dtype=torch.float64)


def similarity(angle: float, scale: float) -> torch.Tensor:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def _trajectory(length: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 2) offsets from frame 0: a random heading at ``speed`` pixels per frame that
    turns and accelerates smoothly."""
    heading = rng.uniform(0, 2 * math.pi)
    turn = rng.normal(0, 0.1)
    accel = rng.uniform(-0.04, 0.04) * speed
    offsets, position = np.zeros((length, 2)), np.zeros(2)
    for t in range(1, length):
        step = max(speed + accel * t, 0.0)
        position = position + step * np.array([math.cos(heading), math.sin(heading)])
        heading += turn
        offsets[t] = position
    return offsets


def affine_path(
    length: int,
    layer_size: tuple[int, int],
    frame_size: tuple[int, int],
    rng: np.random.Generator,
    speed: float,
    spin: float = 0.05,
) -> torch.Tensor:
    """A layer of ``layer_size`` (h, w) placed at a random point of the frame, moving at
    about ``speed`` pixels per frame, turning by up to ``spin`` radians and scaling by up to
    2% per frame: (T, 3, 3) layer pixel -> frame pixel."""
    (h, w), (height, width) = layer_size, frame_size
    start = rng.uniform(0.15, 0.85, 2) * (width - 1, height - 1)
    angle0, spin = rng.uniform(-0.3, 0.3), rng.uniform(-spin, spin)
    scale0, growth = rng.uniform(0.8, 1.2), rng.uniform(-0.02, 0.02)
    centre = translation(-(w - 1) / 2, -(h - 1) / 2)
    offsets = _trajectory(length, speed, rng)
    paths = [
        translation(*(start + offsets[t]))
        @ similarity(angle0 + spin * t, scale0 * math.exp(growth * t))
        @ centre
        for t in range(length)
    ]
    return torch.stack(paths)


def camera_path(
    length: int,
    canvas_size: tuple[int, int],
    frame_size: tuple[int, int],
    rng: np.random.Generator,
    speed: float,
) -> torch.Tensor:
    """A camera panning over a background canvas of ``canvas_size`` (h, w) at about
    ``speed`` pixels per frame, rotating, zooming and tilting slightly (a homography):
    (T, 3, 3) canvas pixel -> frame pixel."""
    (h, w), (height, width) = canvas_size, frame_size
    to_frame = translation((width - 1) / 2, (height - 1) / 2)
    from_canvas = translation(-(w - 1) / 2, -(h - 1) / 2)
    spin, zoom = rng.uniform(-0.01, 0.01), rng.uniform(-0.015, 0.015)
    tilt = rng.uniform(-0.01, 0.01, 2) / max(height, width)
    offsets = _trajectory(length, speed, rng)
    paths = []
    for t in range(length):
        perspective = torch.eye(3, dtype=torch.float64)
        perspective[2, :2] = torch.from_numpy(tilt * t)
        motion = perspective @ similarity(spin * t, math.exp(zoom * t))
        paths.append(to_frame @ motion @ translation(*-offsets[t]) @ from_canvas)
    return torch.stack(paths)
