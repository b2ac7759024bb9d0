"""``Inpainter``: the network run over whole clips or streams of frames (SPEC 5).

Frames are uint8 (H, W, 3) RGB, masks (H, W) with nonzero = hole, as numpy arrays or
torch tensors. Each frame is encoded once when it enters the sliding window and each
adjacent pair's flows are computed once, so a step costs one new frame plus the window's
alignment. Memory holds the window, never the video. Pixels outside the mask come back
exactly as given. With ``compile=True`` the per-frame work runs through ``torch.compile``
and, on CUDA, is replayed as CUDA graphs.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from fused_inpaint.models import SIZE_MULTIPLE, RecurrentState, SlimInpaintNet, load_network

ArrayLike = np.ndarray | torch.Tensor


def _as_uint8_frame(frame: ArrayLike, index: int) -> np.ndarray:
    frame = frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index} must be uint8 of shape (H, W, 3), got {frame.dtype} {frame.shape}"
        )
    return frame


def _as_hole(mask: ArrayLike, index: int, size: tuple[int, int]) -> np.ndarray:
    mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] in (1, 3):  # an image file read as (H, W, C)
        mask = mask.max(axis=2)
    if mask.shape != size:
        raise ValueError(f"mask {index} must have the frames' size {size}, got {mask.shape}")
    return mask != 0


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


def _graphed(fn: Callable) -> Callable:
    """``fn`` compiled with static shapes into CUDA graphs (plain inductor kernels on CPU)."""
    compiled = torch.compile(fn, mode="reduce-overhead", dynamic=False, fullgraph=True)

    def run(*args):
        # Every call starts a new round of graph replays, which reuses the memory of the
        # last round's outputs: what is kept for later steps must be copied out first.
        return _copied(compiled(*args))

    return run


class Inpainter:
    """Removes the masked regions of a video.

    ``weights``: a safetensors file (default: the weights shipped with the package).
    ``device``: default CUDA when available. ``dtype``: default float16 on CUDA, float32 on
    CPU. ``window``: (past, future) frames around the current one, default the network's;
    future = 0 is online mode (no latency). ``compile``: run the per-frame work (encoder,
    flows, step) through ``torch.compile(mode="reduce-overhead", dynamic=False)``: inductor
    kernels, replayed as CUDA graphs on CUDA. The first frames compile (tens of seconds),
    and so does every new frame size; outputs match the uncompiled network's within float
    tolerance.

    ``inpainter(frames, masks)`` inpaints a clip: frames (T, H, W, 3) uint8 (or a list),
    masks (T, H, W) or one static (H, W) mask. ``inpainter.stream(frames, masks)`` yields
    the same frames one by one, ``future`` frames behind its input.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        window: tuple[int, int] | None = None,
        compile: bool = False,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"dtype must be float16, bfloat16 or float32, got {dtype}")
        self.dtype = dtype
        self.network: SlimInpaintNet = load_network(weights).to(self.device, dtype).eval()
        if window is not None:
            past, future = window
            self.network.set_window(past, future)
        work = (self.network.encode_frame, self.network.pair_flows, self.network.step)
        self._encode_frame, self._pair_flows, self._step = (
            tuple(map(_graphed, work)) if compile else work
        )

    @property
    def window(self) -> tuple[int, int]:
        return self.network.past, self.network.future

    def __call__(self, frames, masks) -> np.ndarray:
        """Inpaints a whole clip: returns (T, H, W, 3) uint8."""
        return np.stack(list(self.stream(frames, masks)))

    def _to_tensor(self, frame: np.ndarray, hole: np.ndarray):
        """frame (H, W, 3) uint8, hole (H, W) bool -> image (1, 3, H', W') in [-1, 1] and
        hole (1, 1, H', W'), padded to multiples of SIZE_MULTIPLE."""
        h, w = hole.shape
        pad_h, pad_w = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
        # torch tensors must be writable and have positive strides: read-only buffers and
        # flipped views (BGR to RGB) are copied.
        frame = np.require(frame, requirements=("C", "W"))
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1)[None]
        image = image.to(self.dtype) / 127.5 - 1
        hole_t = torch.from_numpy(hole).to(self.device, self.dtype)[None, None]
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
            hole_t = F.pad(hole_t, (0, pad_w, 0, pad_h))
        return image, hole_t

    @torch.inference_mode()
    def stream(self, frames: Iterable[ArrayLike], masks) -> Iterator[np.ndarray]:
        """Yields each inpainted frame (H, W, 3) uint8, at most ``future`` frames after the
        frame it completes has been read. ``masks``: one (H, W) mask for every frame, or an
        iterable of per-frame masks."""
        net = self.network
        static = isinstance(masks, (np.ndarray, torch.Tensor)) and masks.ndim == 2
        mask_iter = None if static else iter(masks)
        features: deque = deque(maxlen=net.window)
        pairs: deque = deque(maxlen=net.window - 1 if net.window > 1 else 0)
        pending: deque = deque()  # (frame, hole) awaiting output, in order
        state = RecurrentState()
        size = None

        def push(feature) -> None:
            if features and net.window > 1:
                pairs.append(self._pair_flows(features[-1], feature))
            features.append(feature)

        def repeat(feature) -> None:
            # A copy, not the same tensors again: a compiled function is specialised on
            # which of its inputs alias, and would compile again for every such pattern.
            push(_copied(feature))

        def emit() -> np.ndarray:
            nonlocal state
            output, state = self._step(list(features), list(pairs), state)
            frame, hole = pending.popleft()
            h, w = hole.shape
            predicted = ((output[0, :, :h, :w].float() + 1) * 127.5).round().clamp(0, 255)
            predicted = predicted.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            return np.where(hole[..., None], predicted, frame)

        index = -1
        for index, frame in enumerate(frames):
            frame = _as_uint8_frame(frame, index)
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise ValueError(f"frame {index} has size {frame.shape[:2]}, the first {size}")
            try:
                mask = masks if static else next(mask_iter)
            except StopIteration:
                raise ValueError(f"fewer masks than frames: no mask for frame {index}") from None
            hole = _as_hole(mask, index, size)
            feature = self._encode_frame(*self._to_tensor(frame, hole))
            pending.append((frame, hole))
            if not features:  # the first frame stands in for the missing past
                for _ in range(net.past):
                    repeat(feature)
            push(feature)
            if len(features) == net.window:
                yield emit()
        if index < 0:
            return
        if not static and next(mask_iter, None) is not None:
            raise ValueError(f"more masks than frames ({index + 1})")
        while pending:  # the last frame stands in for the missing future
            repeat(features[-1])
            if len(features) == net.window:
                yield emit()
