"""What no frame sees: the network fills the rest of the hole, on a crop around it.

Propagated pixels count as known: they are the fill's context. The network runs once per
frame that still has a hole, as a single-frame model (no window, no memory), on a crop
of the frame around what is left, padded to the network's size multiple.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fused_inpaint.models import SIZE_MULTIPLE, RecurrentState, SlimInpaintNet

# Pixels of context around what is left; crop sides are multiples of CROP_STEP (or the
# whole frame), so that a compiled filler meets few distinct shapes.
CROP_MARGIN = 32
CROP_STEP = 64


def _copied(value):
    """``value`` with every tensor in it, also inside tuples and dataclasses, cloned."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_copied(item) for item in value)
    if dataclasses.is_dataclass(value):
        fields = {f.name: _copied(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **fields)
    return value


def graphed(fn: Callable) -> Callable:
    """``fn`` compiled with static shapes into CUDA graphs (plain inductor kernels on CPU)."""
    compiled = torch.compile(fn, mode="reduce-overhead", dynamic=False, fullgraph=True)

    def run(*args):
        # Every call starts a new round of graph replays, which reuses the memory of the
        # last round's outputs: what is kept for later steps must be copied out first.
        return _copied(compiled(*args))

    return run


def crop_span(extent: int, first: int, last: int) -> tuple[int, int]:
    """(start, size) along an axis of ``extent`` pixels of a crop around [first, last]."""
    wanted = last - first + 1 + 2 * CROP_MARGIN
    size = min(-(-wanted // CROP_STEP) * CROP_STEP, extent)
    start = min(max((first + last + 1) // 2 - size // 2, 0), extent - size)
    return start, size


class NetworkFiller:
    """Fills ``remaining`` pixels of an image with the network's prediction."""

    def __init__(self, network: SlimInpaintNet, dtype: torch.dtype, compile: bool = False):
        if network.window != 1:
            raise ValueError("the filler runs the network on single frames: set_window(0, 0)")
        self.network, self.dtype = network, dtype
        self._predict = graphed(self.predict) if compile else self.predict

    def predict(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """image: (1, 3, h, w) in [-1, 1], h and w multiples of SIZE_MULTIPLE; hole:
        (1, 1, h, w), 1 = hole. The network's whole predicted frame, (1, 3, h, w)."""
        features = self.network.encode_frame(image, hole)
        predicted, _ = self.network.predict([features], [], RecurrentState())
        return predicted

    def __call__(self, image: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        """image: (1, 3, H, W), 0..255; remaining: (1, 1, H, W) bool, not empty. The image
        with ``remaining`` filled."""
        _, _, height, width = image.shape
        rows = remaining[0, 0].any(dim=1).nonzero()[:, 0].tolist()
        cols = remaining[0, 0].any(dim=0).nonzero()[:, 0].tolist()
        y, h = crop_span(height, rows[0], rows[-1])
        x, w = crop_span(width, cols[0], cols[-1])
        window = (..., slice(y, y + h), slice(x, x + w))
        pad = (0, -w % SIZE_MULTIPLE, 0, -h % SIZE_MULTIPLE)
        crop = F.pad(image[window].to(self.dtype) / 127.5 - 1, pad, mode="replicate")
        hole = F.pad(remaining[window].to(self.dtype), pad)
        predicted = (self._predict(crop, hole)[..., :h, :w].to(image.dtype) + 1) * 127.5
        out = image.clone()
        out[window] = torch.where(remaining[window], predicted, image[window])
        return out
