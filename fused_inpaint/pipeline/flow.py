"""Optical flow between adjacent frames, from one of two sources behind one interface.

- ``DISFlow``: OpenCV's DIS (``cv2.DISOpticalFlow``), a classical estimator, on the
  frames with their holes filled smoothly; pairs run on a pool of CPU threads (OpenCV
  releases the GIL), so on a GPU machine they overlap the GPU work.
- ``NetworkFlow``: the inpainting network's own light flow head, on the device.

Either way the flow where the estimate only guesses (in the dilated hole, and where it
points into the other frame's hole) is completed from the flow around it
(``complete_flow``), with the ops of the selected backend on the pipeline's device.
A source (``FlowSource``) has ``pair(a, b)``, which returns a
``concurrent.futures.Future`` of its estimate of the (forward, backward) flows of two
adjacent frames, each (1, 2, H, W) float32 on the pipeline's device, and ``close()``.
``FlowPair`` completes them once, on the caller's thread, when they are first needed.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.data.masks import dilate
from fused_inpaint.models import SIZE_MULTIPLE, SlimInpaintNet
from fused_inpaint.models.network import smooth_fill
from fused_inpaint.ops import flow_warp

SOURCES = ("dis", "network")
DIS_PRESETS = ("ultrafast", "fast", "medium")
# OpenCV's DIS reads out of bounds on frames under 32 pixels on a side (seen with
# OpenCV 5.0 on 12x40, 16x88, 24x100): smaller frames are padded up to this.
DIS_MIN_SIDE = 32
# Pixels around the hole whose estimate is replaced too: DIS's patches (8 to 12 pixels)
# that overlap the hole see the fill, not the scene.
COMPLETION_MARGIN = 4


@dataclass
class FrameInput:
    """One frame as the flow sources see it."""

    rgb: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) bool
    image: torch.Tensor  # (1, 3, H, W) on the device, 0..255
    hole_t: torch.Tensor  # (1, 1, H, W) bool on the device


class FlowSource(Protocol):
    """What the pipeline asks of a flow source (``Inpainter(flow=...)`` takes one too)."""

    name: str

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        """Future of the estimated (forward a -> b on a's grid, backward b -> a on b's
        grid), each (1, 2, H, W) float32 on the device; called once per pair, in order."""
        ...

    def close(self) -> None:
        """Called when a run ends: threads and caches go."""
        ...


def resolved(value) -> Future:
    """A future that already holds ``value`` (a source that computes in place)."""
    future: Future = Future()
    future.set_result(value)
    return future


def affine_fit(flow: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The affine flow field (N, 2, H, W) that fits ``flow`` (N, 2, H, W) best in the least
    squares sense over the ``known`` (N, 1, H, W) bool pixels; zero where fewer than three
    are known."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=flow.device),
        torch.arange(w, dtype=torch.float64, device=flow.device),
        indexing="ij",
    )
    basis = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(1, 3, h * w)  # (1, 3, P)
    weight = known.reshape(n, 1, h * w).double()
    gram = (basis * weight) @ basis.transpose(1, 2)  # (N, 3, 3)
    moments = (basis * weight) @ flow.reshape(n, 2, h * w).double().transpose(1, 2)
    solvable = (weight.sum(dim=(1, 2)) >= 3) & (torch.linalg.det(gram).abs() > 1e-6)
    eye = torch.eye(3, dtype=torch.float64, device=flow.device)
    coefficients = torch.linalg.solve(torch.where(solvable[:, None, None], gram, eye), moments)
    coefficients = coefficients * solvable[:, None, None]
    return (coefficients.transpose(1, 2) @ basis).reshape(n, 2, h, w).to(flow.dtype)


def complete_flow(
    flow: torch.Tensor, hole: torch.Tensor, target_hole: torch.Tensor
) -> torch.Tensor:
    """flow: (N, 2, H, W) from a frame to another; hole, target_hole: (N, 1, H, W) bool,
    the holes of the two frames. The flow where it is only a guess is replaced by the flow
    around it: in the hole (grown by COMPLETION_MARGIN), where the estimate matched the
    fill rather than the scene, and where it points into the other frame's hole, whose
    pixels it could not match. The replacement is the frame's affine motion (a camera's
    pan, zoom or roll, exact for it) plus the rest filled smoothly by pull-push."""
    target = dilate(target_hole, COMPLETION_MARGIN).to(flow.dtype)
    guessed = dilate(hole, COMPLETION_MARGIN) | (flow_warp(target, flow) > 0)
    if not guessed.any():
        return flow
    motion = affine_fit(flow, ~guessed)
    return motion + smooth_fill(flow - motion, guessed)


class FlowPair:
    """The flows of frames (a, b): the source's estimate, completed in the holes
    (``complete_flow``) once, when ``flows()`` is first called."""

    def __init__(self, estimate: Future, a: FrameInput, b: FrameInput):
        self._estimate, self._holes = estimate, (a.hole_t, b.hole_t)
        self._flows: tuple[torch.Tensor, torch.Tensor] | None = None

    def flows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward, backward), each (1, 2, H, W) float32 on the device."""
        if self._flows is None:
            forward, backward = self._estimate.result()
            hole_a, hole_b = self._holes
            self._flows = (
                complete_flow(forward, hole_a, hole_b),
                complete_flow(backward, hole_b, hole_a),
            )
            self._estimate = self._holes = None
        return self._flows


def dis_options(preset: str, threads: int | None) -> tuple[str, int]:
    """(preset, threads) checked, threads defaulting to the CPU count, at most 8."""
    if preset not in DIS_PRESETS:
        raise ValueError(f"dis_preset must be one of {', '.join(DIS_PRESETS)}; got {preset!r}")
    if threads is None:
        threads = min(os.cpu_count() or 1, 8)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return preset, threads


class DISFlow:
    """DIS optical flow on CPU threads. ``preset``: "ultrafast", "fast" or "medium";
    ``threads``: pairs computed at once (default: the CPU count, at most 8)."""

    name = "dis"

    def __init__(self, device: torch.device, preset: str = "medium", threads: int | None = None):
        try:
            import cv2
        except ImportError:
            raise ImportError(
                "flow='dis' needs OpenCV: pip install opencv-python-headless"
            ) from None
        preset, threads = dis_options(preset, threads)
        self._cv2 = cv2
        self._preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        self.device = device
        self.preset, self.threads = preset, threads
        self._local = threading.local()  # a DIS object is not thread-safe: one per thread
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="fused-inpaint-dis")

    def _dis(self):
        if not hasattr(self._local, "dis"):
            self._local.dis = self._cv2.DISOpticalFlow_create(self._preset)
        return self._local.dis

    def _gray(self, frame: FrameInput) -> np.ndarray:
        """The frame in grayscale with its hole filled smoothly: a blank hole would be an
        edge that DIS follows."""
        gray = self._cv2.cvtColor(frame.rgb, self._cv2.COLOR_RGB2GRAY)
        if not frame.hole.any():
            return gray
        image = torch.from_numpy(gray).float()[None, None]
        hole = torch.from_numpy(frame.hole)[None, None]
        return smooth_fill(image, hole)[0, 0].round().to(torch.uint8).numpy()

    def _estimate(self, a: FrameInput, b: FrameInput) -> tuple[torch.Tensor, torch.Tensor]:
        dis = self._dis()
        height, width = a.hole.shape
        pad = (0, max(DIS_MIN_SIDE - height, 0), 0, max(DIS_MIN_SIDE - width, 0))
        gray_a, gray_b = (
            self._cv2.copyMakeBorder(self._gray(f), *pad, self._cv2.BORDER_REPLICATE)
            for f in (a, b)
        )
        flows = (
            dis.calc(x, y, None)[:height, :width] for x, y in ((gray_a, gray_b), (gray_b, gray_a))
        )
        forward, backward = (torch.from_numpy(f).permute(2, 0, 1)[None] for f in flows)
        return forward.to(self.device), backward.to(self.device)

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        """Future of (forward a -> b on a's grid, backward b -> a on b's grid)."""
        return self._pool.submit(self._estimate, a, b)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class NetworkFlow:
    """The network's flow head (``SlimInpaintNet.pair_flows``) on the device, each frame
    encoded once."""

    name = "network"

    def __init__(self, network: SlimInpaintNet, dtype: torch.dtype):
        self.network, self.dtype = network, dtype
        self._cache: tuple[FrameInput, object] | None = None

    def _features(self, frame: FrameInput):
        if self._cache is not None and self._cache[0] is frame:
            return self._cache[1]
        h, w = frame.hole.shape
        pad = (0, -w % SIZE_MULTIPLE, 0, -h % SIZE_MULTIPLE)
        image = F.pad(frame.image.to(self.dtype) / 127.5 - 1, pad, mode="replicate")
        hole = F.pad(frame.hole_t.to(self.dtype), pad)
        features = self.network.encode_frame(image, hole)
        self._cache = (frame, features)
        return features

    def pair(self, a: FrameInput, b: FrameInput) -> Future:
        features_a = self._features(a)
        forward, backward = self.network.flows(features_a, self._features(b))
        h, w = a.hole.shape
        return resolved((forward[..., :h, :w].float(), backward[..., :h, :w].float()))

    def close(self) -> None:
        self._cache = None
