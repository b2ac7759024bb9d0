"""What no frame sees: the rest of the hole filled on a crop around it.

Propagated pixels count as known: they are the fill's context. Two kinds of fill, chosen
by ``Inpainter(fill=...)``: OpenCV's classical inpainting ("navier-stokes", the default,
or "telea"), or the network ("network"), run once per frame that still has a hole as a
single-frame model (no window, no memory), on a crop padded to its size multiple. On
synthetic clips (benchmarks/results/fill_synthetic.md) Navier-Stokes filled what
propagation left 0.4 dB better than the network on average, at about 1/70 of its time.
A large crop (a shorter side of HALF_SIDE or more) is filled at half resolution inside
and at full resolution near what is known: at 854x480 the PSNR in the hole was the same
(30.44 against 30.42 dB), at 1080p a frame's fill took a fraction of the time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.models import SIZE_MULTIPLE, RecurrentState, SlimInpaintNet

FILLS = ("navier-stokes", "telea", "network")
# OpenCV's inpainting radius: the neighbourhood each filled pixel is estimated from.
CLASSICAL_RADIUS = 3
# A crop whose shorter side is at least HALF_SIDE is filled at half resolution (again and
# again while it is), then at full resolution within BAND pixels of what is known: the
# inside of a large fill is smooth, and OpenCV's cost grows with the pixels filled.
HALF_SIDE = 256
BAND = 4
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


def crop_around(remaining: torch.Tensor) -> tuple:
    """remaining: (1, 1, H, W) bool, not empty. The index of a crop around it."""
    _, _, height, width = remaining.shape
    rows = remaining[0, 0].any(dim=1).nonzero()[:, 0].tolist()
    cols = remaining[0, 0].any(dim=0).nonzero()[:, 0].tolist()
    y, h = crop_span(height, rows[0], rows[-1])
    x, w = crop_span(width, cols[0], cols[-1])
    return ..., slice(y, y + h), slice(x, x + w)


def inpaint(
    image: np.ndarray, hole: np.ndarray, flag: int, half_side: int = HALF_SIDE
) -> np.ndarray:
    """OpenCV's inpainting (``flag``: ``cv2.INPAINT_NS`` or ``cv2.INPAINT_TELEA``, radius
    CLASSICAL_RADIUS) of ``image`` (h, w[, 3]) uint8 where ``hole`` (h, w) uint8 is
    nonzero; a crop whose shorter side is ``half_side`` or more at half resolution inside."""
    height, width = hole.shape
    if min(height, width) < half_side:
        return cv2.inpaint(image, hole, CLASSICAL_RADIUS, flag)
    hole = (hole != 0).view(np.uint8)
    half = ((width + 1) // 2, (height + 1) // 2)
    small = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole * 255, half, interpolation=cv2.INTER_AREA) > 0  # any of it
    inside = inpaint(small, small_hole.view(np.uint8), flag, half_side)
    inside = cv2.resize(inside, (width, height))
    near = cv2.dilate((hole == 0).view(np.uint8), np.ones((2 * BAND + 1,) * 2, np.uint8))
    inner = hole > near  # in the hole, farther than BAND from what is known
    start = np.where(inner[..., None] if image.ndim == 3 else inner, inside, image)
    return cv2.inpaint(np.ascontiguousarray(start), hole & near, CLASSICAL_RADIUS, flag)


class ClassicalFiller:
    """Fills ``remaining`` pixels of an image with OpenCV's inpainting, on a crop around
    them: ``method`` "navier-stokes" (Bertalmio et al.) or "telea"."""

    def __init__(self, method: str):
        self._flag = cv2.INPAINT_NS if method == "navier-stokes" else cv2.INPAINT_TELEA

    def __call__(self, image: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        """image: (1, 3, H, W), 0..255; remaining: (1, 1, H, W) bool, not empty. The image
        with ``remaining`` filled, in place."""
        window = crop_around(remaining)
        crop = image[window][0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        hole = remaining[window][0, 0].to(torch.uint8)
        filled = inpaint(np.ascontiguousarray(crop.cpu().numpy()), hole.cpu().numpy(), self._flag)
        filled = torch.from_numpy(filled).to(image.device).permute(2, 0, 1)[None]
        image[window] = torch.where(remaining[window], filled.to(image.dtype), image[window])
        return image


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
        with ``remaining`` filled, in place."""
        window = crop_around(remaining)
        h, w = window[1].stop - window[1].start, window[2].stop - window[2].start
        pad = (0, -w % SIZE_MULTIPLE, 0, -h % SIZE_MULTIPLE)
        crop = F.pad(image[window].to(self.dtype) / 127.5 - 1, pad, mode="replicate")
        hole = F.pad(remaining[window].to(self.dtype), pad)
        predicted = (self._predict(crop, hole)[..., :h, :w].to(image.dtype) + 1) * 127.5
        image[window] = torch.where(remaining[window], predicted, image[window])
        return image
