"""Seams under changing light: the propagated pixels of a hole moved in the gradient
domain onto the frame's own, as Poisson blending (seamless cloning) does.

A propagated pixel is read from another frame, filmed under that frame's exposure; next
to the frame's own pixels it shows as a seam when the light changed. Every known pixel
next to a propagated one is read too, from the same source frame, at the same offset
from the position its neighbour was read at: the difference between the frame's value
there and the source's is what the light changed at that point, texture cancelling. That
change, as a ratio (exposure multiplies), is filled smoothly over the propagated pixels
(pull-push, the membrane of seamless cloning) and applied to them; each sweep's values on
their own, before the nearer in time is taken: a sweep's pixels deeper in the hole come
from frames farther away, and so do the border's between which its membrane
interpolates. Known pixels stay exact.

On synthetic clips (``benchmarks/bench_seams.py``) it raised the PSNR in the hole by 1.9
to 4.8 dB on average under a 15% swing of exposure, and moved it by -0.3 to +0.1 dB
without one (where a source is misregistered, a seam's ratio is texture): so it is an
option, for footage whose light changes (auto-exposure, flicker, clouds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fused_inpaint.models.network import smooth_fill

# Added to both sides of a ratio of 0-255 values: near black, noise is not a gain.
DARK = 8.0


def from_neighbours(frame: torch.Tensor, pos: torch.Tensor, carried: torch.Tensor) -> tuple:
    """Each pixel's source as its carried 8-neighbour's: that neighbour's source frame,
    its position moved by the offset from the neighbour to the pixel. frame: (1, 1, h, w)
    int32, pos: (1, 2, h, w) float32 (x, y), carried: (1, 1, h, w) bool. Pixels without
    a carried neighbour take an arbitrary one's: callers mask them."""
    height, width = carried.shape[-2:]
    _, at = F.max_pool2d(carried.float(), 3, 1, 1, return_indices=True)
    at = at.flatten()
    source = frame.flatten()[at].view_as(frame)
    moved = pos.flatten(2)[..., at].view_as(pos).clone()
    pixel = torch.arange(height * width, device=at.device)
    moved[:, 0] += (pixel % width - at % width).view(height, width)
    moved[:, 1] += (pixel // width - at // width).view(height, width)
    return source, moved


def blend_seams(
    image: torch.Tensor,
    hole: torch.Tensor,
    source: torch.Tensor,
    pos: torch.Tensor,
    values: torch.Tensor,
    valid: torch.Tensor,
    read,
) -> torch.Tensor:
    """One sweep's propagated ``values`` (1, 3, h, w) where ``valid`` (1, 1, h, w) bool,
    on a region that holds the hole's box and a pixel around, moved onto the frame's own
    ``image`` (1, 3, h, w) float32 outside its ``hole`` (1, 1, h, w) bool. ``source``
    (1, 1, h, w) int32 and ``pos`` (1, 2, h, w): the sweep's state there. ``read(source,
    pos)``: the values those sources show, (values, found). Returns the values, blended."""
    carried = hole & valid
    seam = ~hole & (F.max_pool2d(carried.float(), 3, 1, 1) > 0)
    if not seam.any():
        return values
    source, pos = from_neighbours(source, pos, carried)
    seen, found = read(torch.where(seam, source, -1), torch.where(seam, pos, 0.0))
    found &= seam
    if not found.any():
        return values
    # A change of exposure multiplies (in linear light, and so under the gamma curve):
    # the log of the ratio is what the membrane carries.
    change = torch.where(found, torch.log((image + DARK) / (seen + DARK)), 0.0)
    gain = torch.exp(smooth_fill(change, ~found))
    return torch.where(carried, (values + DARK) * gain - DARK, values)
