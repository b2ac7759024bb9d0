"""What no frame shows, averaged along the motion over the last frames.

The pixels propagation leaves are filled on every frame anew, and each frame's own fill
flickers where the scene does not change (its context's noise, the shape of what
propagation left). ``SteadyFill`` averages a pixel's fill with the fills of the last
frames where the pixel was on them, followed back along the completed flows: the frame's
own fill weighs 1, the frame before's DECAY, the one before that DECAY², and so on over
FRAMES frames, as long as the pixel was filled there too (a value that propagation did
not carry along the flow is not brought in along it here: where the flow is a poor
guess, that is another object's colour). Each frame contributes its own fill before
averaging, so an output depends on the last FRAMES frames only, not on the whole past:
a clip split into segments with that much more context (``batch.segments.plan``) gives
the same frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fused_inpaint.pipeline.flow import Box, bounding_box, window

# Chosen on synthetic clips (benchmarks/results/fill_synthetic.md).
FRAMES = 8
DECAY = 0.75


@dataclass
class _Past:
    """A frame as the frames after read it, on its hole's ``box``: its output before
    averaging, rounded as it was output, where it was filled (1, else 0), and its flow to
    the frame before (none on the first frame), one tensor (1, 4 or 6, h, w) float16, so
    that one read takes all (all exact in it: the completed flows are kept in float16)."""

    box: Box
    data: torch.Tensor


def sample(values: torch.Tensor, box: Box, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` (1, C, h, w) on ``box`` read bilinearly at the frame positions ``pos``
    (1, 2, H', W'), (x, y): ((1, C, H', W'), where every tap lies in the box (1, 1, H', W')
    bool)."""
    top, bottom, left, right = box
    x, y = pos[:, :1], pos[:, 1:]
    inside = (x >= left) & (x <= right - 1) & (y >= top) & (y <= bottom - 1)
    # align_corners=False: pixel i of n sits at (2 i + 1) / n - 1.
    across, down = (2 * (x - left) + 1) / (right - left), (2 * (y - top) + 1) / (bottom - top)
    grid = torch.cat([across, down], 1).permute(0, 2, 3, 1) - 1
    read = F.grid_sample(values, grid, align_corners=False)
    return read, inside


class SteadyFill:
    """The fill of each frame in turn averaged with the last ``frames`` - 1 frames' fills
    along the flow (``frames`` 1: no averaging)."""

    def __init__(self, frames: int = FRAMES, decay: float = DECAY):
        self.decay = decay
        self.past: deque[_Past | None] = deque(maxlen=max(frames - 1, 0))

    def averaged(
        self, values: torch.Tensor, take: torch.Tensor, back: torch.Tensor | None, box: Box
    ) -> torch.Tensor:
        """values: (1, 3, h, w) float32, a frame's output on its hole's ``box``; take: (1, 1,
        h, w) bool, the pixels to average (the fill's); back: (1, 2, h, w), the frame's flow
        to the frame before on the box (None on the first frame). Returns the values with
        those pixels averaged; remembers ``values`` and ``take`` for the frames after."""
        past = list(self.past)
        found = bounding_box(take)
        if found is None:  # nothing filled: no chain passes this frame (most frames)
            self.past.append(None)
            return values
        data = torch.cat([values.round().clamp(0, 255), take.float()], 1)
        data = data if back is None else torch.cat([data, back.float()], 1)
        self.past.append(_Past(box, data.half()))
        if back is None:
            return values
        # On the box of what is averaged only: a moving hole leaves little to the fill.
        inner, top, left = window(found), box[0] + found[0], box[2] + found[2]
        kw = dict(dtype=torch.float32, device=values.device)
        xs = torch.arange(left, left + found[3] - found[2], **kw)
        ys = torch.arange(top, top + found[1] - found[0], **kw)
        pos = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))[None] + back[inner].float()
        own, alive = values[inner], take[inner].clone()
        total, weights, weight = own.clone(), torch.ones_like(alive, dtype=own.dtype), 1.0
        for frame in reversed(past):  # newest first; pos: where the pixels were on it
            if frame is None or not alive.any():
                break
            read, lands = sample(frame.data.float(), frame.box, pos)
            alive &= lands & (read[:, 3:4] > 1 - 1e-3)  # every tap a fill
            weight *= self.decay
            total += torch.where(alive, weight * read[:, :3], 0)
            weights += weight * alive
            if read.shape[1] == 4:  # the first frame: nothing before it
                break
            pos = pos + read[:, 4:]
        out = values.clone()
        out[inner] = torch.where(take[inner], total / weights, own)
        return out

    def skip(self) -> None:
        """A frame without a hole: the chains end there (as on a frame without a fill)."""
        self.past.append(None)
