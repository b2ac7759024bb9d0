"""Layers moved by homographies over time, rendered with their exact flow and occlusion.

A layer is an image with a hard alpha, placed in frame ``t`` by the 3x3 homography
``paths[t]`` that maps the layer's pixel coordinates to the frame's. Frame pixel ``x`` of
the topmost layer ``l`` covering it shows the layer at ``paths[l][t]^-1 x``; in frame
``t + 1`` that point is at ``paths[l][t + 1] paths[l][t]^-1 x``, which is the exact forward
flow. Pixel centres sit at integer coordinates, as in ``flow_warp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Layer:
    """image: (3, h, w) in [0, 1] or None (a mask-only layer); alpha: (h, w) bool or float in
    [0, 1], opaque at >= 0.5; paths: (T, 3, 3) layer pixel -> frame pixel homographies."""

    image: torch.Tensor | None
    alpha: torch.Tensor
    paths: torch.Tensor


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """(H, W, 3) float64 homogeneous pixel coordinates (x, y, 1)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)


def apply_homography(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """matrix: (3, 3); points: (..., 3) homogeneous -> (..., 2) Cartesian."""
    mapped = points @ matrix.to(points.dtype).T
    return mapped[..., :2] / mapped[..., 2:]


def _sample(source: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of source (C, h, w) at pixel positions at (H, W, 2) -> (C, H, W);
    outside the source, its border reflected."""
    h, w = source.shape[-2:]
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=at.dtype)
    grid = (at * scale - 1).to(torch.float32)[None]
    return F.grid_sample(
        source[None].float(), grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]


def layer_coordinates(layer: Layer, t: int, grid: torch.Tensor) -> torch.Tensor:
    """(H, W, 2): where each frame pixel of ``grid`` falls in the layer at frame ``t``."""
    return apply_homography(torch.linalg.inv(layer.paths[t]), grid)


def coverage(layer: Layer, at: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: the frame pixels the layer covers, given ``at`` (H, W, 2), where they
    fall in the layer (``layer_coordinates``)."""
    h, w = layer.alpha.shape
    inside = (at[..., 0] >= 0) & (at[..., 0] <= w - 1) & (at[..., 1] >= 0) & (at[..., 1] <= h - 1)
    return inside & (_sample(layer.alpha[None].float(), at)[0] >= 0.5)


def render(layers: list[Layer], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (T, 3, H, W) in [0, 1] and owner (T, H, W) int64, the index of the topmost
    layer at each pixel (-1 where none is). Layers are listed bottom to top."""
    grid = pixel_grid(height, width)
    length = layers[0].paths.shape[0]
    frames = torch.zeros(length, 3, height, width)
    owner = torch.full((length, height, width), -1, dtype=torch.int64)
    for t in range(length):
        for index, layer in enumerate(layers):
            at = layer_coordinates(layer, t, grid)
            covered = coverage(layer, at)
            if layer.image is not None:
                color = _sample(layer.image, at)
                frames[t] = torch.where(covered, color, frames[t])
            owner[t][covered] = index
    return frames, owner


def layer_flow(layer: Layer, source: int, target: int, grid: torch.Tensor) -> torch.Tensor:
    """(2, H, W) float64: where the layer's point at each pixel of frame ``source`` moves
    in frame ``target``, minus the pixel."""
    relative = layer.paths[target] @ torch.linalg.inv(layer.paths[source])
    return (apply_homography(relative, grid) - grid[..., :2]).permute(2, 0, 1)


def flow_between(
    layers: list[Layer], owner: torch.Tensor, source: int, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact flow from frame ``source`` to ``target`` on ``source``'s grid, (2, H, W)
    float32 in pixels, and where it is valid, (H, W) bool: the point stays in the frame,
    and every pixel that bilinear sampling at it reads with nonzero weight in ``target``
    shows the same layer (it is not occluded)."""
    height, width = owner.shape[-2:]
    grid = pixel_grid(height, width)
    here = owner[source]
    flow = torch.zeros(2, height, width, dtype=torch.float64)
    for index, layer in enumerate(layers):
        flow = torch.where(here == index, layer_flow(layer, source, target, grid), flow)
    x, y = grid[..., 0] + flow[0], grid[..., 1] + flow[1]
    valid = (here >= 0) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    x0, y0 = x.floor().clamp(0, width - 1), y.floor().clamp(0, height - 1)
    reads_x1, reads_y1 = x > x0, y > y0  # the far taps have weight only off the grid
    there = owner[target]
    for dy in (0, 1):
        for dx in (0, 1):
            xi = (x0.long() + dx).clamp(max=width - 1)
            yi = (y0.long() + dy).clamp(max=height - 1)
            read = (reads_x1 if dx else torch.ones_like(valid)) & (reads_y1 if dy else True)
            valid &= ~read | (there[yi, xi] == here)
    return flow.float(), valid
