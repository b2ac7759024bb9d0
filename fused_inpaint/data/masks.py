"""Hole shapes and their motion: free-form strokes and blobs, static or moving, and
objects' shapes.

Shapes are alphas on their own canvas, placed in the frames by a ``Layer`` path, so a
moving mask is rendered exactly like a moving foreground layer.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.data.layers import Layer, coverage, layer_coordinates, pixel_grid
from fused_inpaint.data.motion import affine_path


def blob(size: int, rng: np.random.Generator) -> torch.Tensor:
    """(size, size) float alpha: a random star-shaped blob filling most of the canvas."""
    angles = torch.linspace(0, 2 * math.pi, 181)[:-1]
    radius = torch.ones_like(angles)
    for k in range(1, 5):
        radius += rng.uniform(0, 0.3 / k) * torch.cos(k * angles + rng.uniform(0, 2 * math.pi))
    radius = radius / radius.max() * (size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = (size - 1) / 2
    dy, dx = ys - centre, xs - centre
    angle = torch.atan2(dy, dx) % (2 * math.pi)
    bound = radius[(angle / (2 * math.pi) * len(angles)).long() % len(angles)]
    return (dx**2 + dy**2 <= bound**2).float()


def limbed(size: int, rng: np.random.Generator) -> torch.Tensor:
    """(size, size) float alpha: a blob half the canvas across with two to four straight
    limbs reaching out from its centre, each 3 to 10% of the canvas wide (an object's
    arms, legs or stand: parts narrower than optical flow resolves)."""
    side = max(2, round(0.55 * size))
    start = (size - side) // 2
    alpha = torch.zeros(size, size)
    alpha[start : start + side, start : start + side] = blob(side, rng)
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )  # fmt: skip
    centre = np.full(2, (size - 1) / 2)
    for _ in range(rng.integers(2, 5)):
        angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(0.35, 0.5) * size
        end = centre + reach * np.array([math.cos(angle), math.sin(angle)])
        alpha = torch.maximum(alpha, _segment(xs, ys, centre, end, rng.uniform(0.03, 0.1) * size))
    return alpha


def strokes(size: int, rng: np.random.Generator) -> torch.Tensor:
    """(size, size) float alpha: one to four free-form brush strokes (random polylines)."""
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )  # fmt: skip
    alpha = torch.zeros(size, size)
    for _ in range(rng.integers(1, 5)):
        width = rng.uniform(0.03, 0.1) * size
        point = rng.uniform(0.2, 0.8, 2) * size
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(rng.integers(2, 7)):
            angle += rng.normal(0, 0.8)
            step = rng.uniform(0.1, 0.35) * size
            end = np.clip(point + step * np.array([math.cos(angle), math.sin(angle)]), 0, size - 1)
            alpha = torch.maximum(alpha, _segment(xs, ys, point, end, width))
            point = end
    return alpha


def _segment(xs, ys, start, end, width) -> torch.Tensor:
    """Where the canvas is within width / 2 of the segment start-end."""
    direction = torch.tensor(end - start, dtype=torch.float32)
    length2 = float(direction @ direction) or 1.0
    px, py = xs - float(start[0]), ys - float(start[1])
    along = ((px * direction[0] + py * direction[1]) / length2).clamp(0, 1)
    distance2 = (px - along * direction[0]) ** 2 + (py - along * direction[1]) ** 2
    return (distance2 <= (width / 2) ** 2).float()


def dilate(holes: torch.Tensor, pixels: int) -> torch.Tensor:
    """holes: (..., H, W) bool, grown by ``pixels`` in every direction (a square)."""
    if pixels <= 0:
        return holes
    shape, side = holes.shape, 2 * pixels + 1
    flat = holes.reshape(-1, *shape[-2:])
    if holes.device.type == "cpu":  # OpenCV's dilation: about 100 times max_pool2d's speed
        kernel = np.ones((side, side), np.uint8)
        grown = [cv2.dilate(image.contiguous().numpy().view(np.uint8), kernel) for image in flat]
        return torch.from_numpy(np.stack(grown)).view(torch.bool).reshape(shape)
    # A square is a row then a column: 2 * side comparisons a pixel, not side squared.
    grown = flat[:, None].half()
    grown = F.max_pool2d(grown, (1, side), 1, (0, pixels))
    grown = F.max_pool2d(grown, (side, 1), 1, (pixels, 0))
    return grown.reshape(shape) > 0


def hole_layer(
    length: int, height: int, width: int, rng: np.random.Generator, moving: bool = True
) -> Layer:
    """A stroke or blob hole covering about 3 to 25% of the frame, static or drifting."""
    side = round(math.sqrt(height * width * rng.uniform(0.08, 0.5)))
    alpha = strokes(side, rng) if rng.random() < 0.5 else blob(side, rng)
    paths = affine_path(length, (side, side), (height, width), rng, rng.uniform(0.5, 3), 0.03)
    if not moving:
        paths = paths[:1].repeat(length, 1, 1)
    return Layer(None, alpha, paths)


def render_holes(layers: list[Layer], height: int, width: int) -> torch.Tensor:
    """(T, H, W) bool: the union of the hole layers in each frame."""
    grid = pixel_grid(height, width)
    length = layers[0].paths.shape[0]
    holes = torch.zeros(length, height, width, dtype=torch.bool)
    for t in range(length):
        for layer in layers:
            holes[t] |= coverage(layer, layer_coordinates(layer, t, grid))
    return holes


def moving_holes(
    length: int, height: int, width: int, seed: int, count: int = 1, moving: bool = True
) -> torch.Tensor:
    """(T, H, W) bool: ``count`` random stroke or blob holes, moving unless not ``moving``;
    the same for the same arguments."""
    rng = np.random.default_rng(seed)
    layers = [hole_layer(length, height, width, rng, moving) for _ in range(count)]
    return render_holes(layers, height, width)
