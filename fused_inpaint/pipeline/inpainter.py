"""``Inpainter``: propagation, then the network for what no frame sees (SPEC 5).

Frames are uint8 (H, W, 3) RGB, masks (H, W) with nonzero = hole, as numpy arrays or
torch tensors. Pixels outside the mask come back exactly as given; memory holds the
schedule's frames (a chunk, or the lookahead and the reach of the past), never the video.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from fused_inpaint.io import channel_max
from fused_inpaint.models import SlimInpaintNet, load_network
from fused_inpaint.pipeline.filler import FILLS, ClassicalFiller, NetworkFiller
from fused_inpaint.pipeline.flow import (
    SOURCES,
    DISFlow,
    FlowSource,
    FrameInput,
    NetworkFlow,
    completed_pair,
    dis_options,
    window,
)
from fused_inpaint.pipeline.propagation import Propagation, Schedule, intra_op_threads
from fused_inpaint.pipeline.steady import SteadyFill

ArrayLike = np.ndarray | torch.Tensor
MODES = ("offline", "stream", "online")
DEFAULT_CHUNK, DEFAULT_OVERLAP = 60, 20  # offline
DEFAULT_LOOKAHEAD = 8  # stream
DEFAULT_MAX_AGE = 30


def _as_array(value: ArrayLike, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise ValueError(f"{name} is a meta tensor: it holds no values")
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _as_uint8_frame(frame: ArrayLike, index: int) -> np.ndarray:
    frame = _as_array(frame, f"frame {index}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index} must be uint8 of shape (H, W, 3), got {frame.dtype} {frame.shape}"
        )
    return frame


def _as_hole(mask: ArrayLike, index: int, size: tuple[int, int]) -> np.ndarray:
    mask = _as_array(mask, f"mask {index}")
    if mask.ndim == 3 and mask.shape[2] in (1, 3):  # an image file read as (H, W, C)
        mask = channel_max(mask)
    if mask.shape != size:
        raise ValueError(f"mask {index} must have the frames' size {size}, got {mask.shape}")
    if mask.dtype.kind == "f" and np.isnan(mask).any():
        raise ValueError(f"mask {index} holds NaN: a mask is nonzero for a hole, zero elsewhere")
    return mask != 0


# glibc's mallopt parameters: the size from which an allocation is its own mapping, and
# the free memory at the top of an arena that it keeps rather than gives back.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 2**25, 2**27


@functools.cache
def release_freed_memory() -> None:
    """Sets glibc's malloc so that what the pipeline frees goes back to the system once
    it is large, and stays in malloc's hands while it is reused every frame. Allocations
    of MMAP_THRESHOLD bytes or more are mappings of their own: by default the threshold
    rises with every large block freed, and the raw flow estimates (made on DIS's
    threads, freed on another) then stay in their arenas (a 1080p run held twice the
    memory it used). Smaller ones come from the arenas, which keep TRIM_THRESHOLD bytes
    free at their top: with a 1 MiB threshold every per-frame buffer was a fresh mapping,
    and faulting its pages in cost a third of the CPU at 1080p (45 000 faults and 100 ms
    of system time a frame offline, 150 ms in stream mode); with these, 3000 faults, the
    pipeline 11% faster offline and 19% in stream mode, for 70 to 190 MiB more at its
    peak. Elsewhere than glibc, nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def trim_freed_memory() -> None:
    """Gives the system back the free memory malloc's arenas hold (glibc's malloc_trim):
    a process that runs one stream after another (a server, a batch worker) then holds
    no more between them than it uses. Elsewhere than glibc, nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _count(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def schedule(mode: str, chunk: int, overlap: int, lookahead: int, max_age: int) -> Schedule:
    """The propagation schedule of ``mode``: "offline" (chunks of ``chunk`` frames, each
    overlapping the next by ``overlap``), "stream" (``lookahead`` frames of latency) or
    "online" (no latency, the forward sweep only)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    _count("max_age", max_age, 1)
    if mode == "offline":
        _count("chunk", chunk, 2)
        _count("overlap", overlap, 0)
        if overlap >= chunk:
            raise ValueError(f"overlap must be smaller than chunk ({chunk}), got {overlap}")
        return Schedule(chunk - overlap, overlap, max_age, ahead_option="chunk")
    if mode == "stream":
        return Schedule(block=1, lookahead=_count("lookahead", lookahead, 0), max_age=max_age)
    return Schedule(block=1, lookahead=0, max_age=max_age, backward=False)


def chosen_device(device) -> torch.device:
    """``device`` as a torch.device; None: CUDA when available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class Inpainter:
    """Removes the masked regions of a video.

    Each hole pixel takes the real value that the nearest frame in time shows of it,
    carried along the optical flow (``flow``: "dis", OpenCV's DIS on CPU threads,
    "network", the network's flow head, or a ``FlowSource`` object); ``fill`` fills what
    no frame shows: "navier-stokes" (default) or "telea", OpenCV's inpainting, or
    "network", the network.

    ``mode``: "offline" (default; the clip in chunks of ``chunk`` frames overlapping by
    ``overlap``), "stream" (``lookahead`` frames of latency) or "online" (no latency, the
    past only). ``max_age``: the farthest, in frames, a value is carried. ``weights``: a
    safetensors file (default: the shipped ones). ``device``: default CUDA when available;
    ``dtype``: default float16 on CUDA, float32 on CPU. ``dis_preset``: "ultrafast",
    "fast" or "medium"; ``threads``: DIS pairs computed at once, on threads overlapping
    the rest (0: on the calling thread, one CPU); in offline mode on the CPU the rest
    then keeps to the CPUs they leave, at least one torch thread (the caller's setting is
    back between frames).
    ``compile``: the network's fill through ``torch.compile`` (CUDA graphs on CUDA; each
    new crop size compiles once).
    ``temporal_flow``: the flow in the holes also carried from the frames before where
    they saw the region, where something moves unlike its surroundings; off by default: on
    synthetic clips it raised the PSNR in the hole by 0.4 to 0.5 dB on average (up to 4 dB
    where an object passes behind the hole) but the flow's error in the hole too.
    ``seams``: the propagated pixels blended onto the frame's own in the gradient domain,
    for footage whose light changes (``pipeline.seams``); off by default.
    ``steady_fill``: what no frame shows, averaged along the motion with the last frames'
    fills there (``pipeline.steady``), so that it does not flicker where the scene is
    still; False: each frame's own fill.

    ``inpainter(frames, masks)`` inpaints a clip: frames (T, H, W, 3) uint8 (or a list),
    masks (T, H, W) or one static (H, W) mask. ``inpainter.stream(frames, masks)`` yields
    the same frames one by one, at most ``latency`` frames behind its input.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        mode: str = "offline",
        flow: str | FlowSource = "dis",
        chunk: int = DEFAULT_CHUNK,
        overlap: int = DEFAULT_OVERLAP,
        lookahead: int = DEFAULT_LOOKAHEAD,
        max_age: int = DEFAULT_MAX_AGE,
        dis_preset: str = "medium",
        threads: int | None = None,
        compile: bool = False,
        fill: str = "navier-stokes",
        temporal_flow: bool = False,
        seams: bool = False,
        steady_fill: bool = True,
    ) -> None:
        release_freed_memory()
        self.device = chosen_device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device}: no CUDA device is available")
        if dtype is None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"dtype must be float16, bfloat16 or float32, got {dtype}")
        if self.device.type == "cpu" and dtype != torch.float32:
            raise ValueError(f"dtype {dtype} is for GPUs; on the CPU use float32")
        if isinstance(flow, str) and flow not in SOURCES:
            raise ValueError(f"flow must be one of {', '.join(SOURCES)}; got {flow!r}")
        if not isinstance(flow, str) and not callable(getattr(flow, "pair", None)):
            raise TypeError(f"flow must be {' or '.join(SOURCES)} or a FlowSource, got {flow!r}")
        self.dtype, self.mode, self.flow, self.weights = dtype, mode, flow, weights
        if not isinstance(temporal_flow, bool):
            raise ValueError(f"temporal_flow must be True or False, got {temporal_flow!r}")
        self.schedule = schedule(mode, chunk, overlap, lookahead, max_age)
        self.schedule = dataclasses.replace(self.schedule, temporal_flow=temporal_flow)
        if not isinstance(seams, bool):
            raise ValueError(f"seams must be True or False, got {seams!r}")
        self.seams = seams
        if not isinstance(steady_fill, bool):
            raise ValueError(f"steady_fill must be True or False, got {steady_fill!r}")
        self.steady_fill = steady_fill
        self.network: SlimInpaintNet = load_network(weights).to(self.device, dtype).eval()
        self.network.set_window(0, 0)  # the filler runs it on single frames
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}; got {fill!r}")
        self.fill = fill
        if fill == "network":
            self.filler = NetworkFiller(self.network, dtype, compile)
        else:
            self.filler = ClassicalFiller(fill)
        self._dis_options = dis_options(dis_preset, threads)  # checked now, used per run

    @property
    def latency(self) -> int:
        """Frames read ahead of the frame ``stream`` yields next."""
        return self.schedule.block + self.schedule.lookahead - 1

    def _flow_source(self) -> FlowSource:
        if not isinstance(self.flow, str):
            return self.flow
        if self.flow == "network":
            return NetworkFlow(self.network, self.dtype)
        preset, threads = self._dis_options
        return DISFlow(self.device, preset, threads)

    def __call__(self, frames, masks) -> np.ndarray:
        """Inpaints a whole clip: returns (T, H, W, 3) uint8."""
        output = list(self.stream(frames, masks))
        if not output:
            raise ValueError("frames is empty: there is no frame to inpaint")
        return np.stack(output)

    def _inputs(self, frames: Iterable[ArrayLike], masks) -> Iterator[FrameInput]:
        """Checks and converts each (frame, mask) pair."""
        static = isinstance(masks, (np.ndarray, torch.Tensor)) and masks.ndim == 2
        mask_iter = None if static else iter(masks)
        size = None
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
            # torch tensors must be writable and have positive strides: read-only buffers
            # and flipped views (BGR to RGB) are copied.
            rgb = np.require(frame, requirements=("C", "W"))
            # On the CPU the tensors are views of the arrays: every frame is held once.
            yield FrameInput.of(rgb, hole, self.device)
        if index >= 0 and not static and next(mask_iter, None) is not None:
            raise ValueError(f"more masks than frames ({index + 1})")

    @torch.inference_mode()
    def completed_flows(self, frames, masks) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The flows propagation follows, for each pair of adjacent frames: (forward t ->
        t+1 on t's grid, backward t+1 -> t on t+1's grid), each (1, 2, H, W) float32 on the
        device, completed in the holes; ``frames`` and ``masks`` as for ``stream``."""
        source = self._flow_source()
        try:
            previous, carried = None, None
            for frame in self._inputs(frames, masks):
                if previous is not None:
                    estimate = source.pair(previous, frame).result()
                    forward, backward, carried = completed_pair(
                        estimate, previous, frame, self.schedule.temporal_flow, carried
                    )
                    yield forward.float(), backward.float()
                previous = frame
        finally:
            source.close()

    def _tensor_threads(self, source: FlowSource) -> int | None:
        """torch's intra-op threads for the pipeline's own work (None: as they are). In
        offline mode on the CPU, a flow source's threads (DIS's) estimate the next chunk's
        flows while the sweeps run: torch gets the CPUs they leave, at least one, at most
        the caller's setting (on 2 CPUs at 854x480 the pipeline took 76 ms a frame with
        one torch thread, 86 with two). Stream and online modes wait for each frame's flow
        before its sweeps, so torch keeps its threads there."""
        flow_threads = getattr(source, "threads", 0)  # estimates on threads of its own
        if not (flow_threads > 0 and self.schedule.block > 1 and self.device.type == "cpu"):
            return None
        return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - flow_threads))

    def _output(self, done, steady: SteadyFill | None) -> np.ndarray:
        """The frame (H, W, 3) uint8 of a propagated frame ``done`` (``Propagated``): the
        propagated values in its hole, the rest filled (and averaged along the motion by
        ``steady``, the run's, when given)."""
        frame, box = done.frame, done.frame.box
        out = frame.rgb.copy()
        if box is None:
            if steady is not None:
                steady.skip()
            return out
        remaining = frame.hole_t & ~done.reached
        values = done.values
        if remaining[window(box)].any():
            values = self.filler(done.image(), remaining)[window(box)]
        if steady is not None:
            values = steady.averaged(values, remaining[window(box)], done.back, box)
        filled = values[0].round().clamp(0, 255).to(torch.uint8)
        filled = filled.permute(1, 2, 0).cpu().numpy()
        region = out[box[0] : box[1], box[2] : box[3]]
        np.copyto(region, filled, where=frame.hole[window(box)][..., None])
        return out

    @torch.inference_mode()
    def stream(self, frames: Iterable[ArrayLike], masks) -> Iterator[np.ndarray]:
        """Yields each inpainted frame (H, W, 3) uint8, at most ``latency`` frames after the
        frame it completes has been read. ``masks``: one (H, W) mask for every frame, or an
        iterable of per-frame masks."""
        source = self._flow_source()
        anything_known, anything_read = False, False
        steady = SteadyFill() if self.steady_fill else None
        threads = self._tensor_threads(source)
        try:
            # While the flow source idles (a backward sweep, the frames after the last
            # read), torch takes the caller's threads: at 1080p offline, 10% of a 120-frame
            # stream ran on one CPU.
            caller = None if threads is None else torch.get_num_threads()
            propagation = Propagation(source, self.schedule, seams=self.seams, idle_threads=caller)
            propagated = propagation.run(self._inputs(frames, masks))

            def tensor_threads():  # the caller's setting between frames
                return intra_op_threads(caller if propagation.exhausted else threads)

            while True:
                with tensor_threads():
                    item = next(propagated, None)
                if item is None:
                    break
                with tensor_threads():  # the last read may have found the end
                    out = self._output(item, steady)
                anything_read = True
                anything_known = anything_known or not item.frame.hole.all()
                yield out
        finally:
            source.close()
            propagated = item = None  # the run's frames and states, freed before the trim
            trim_freed_memory()
        if not anything_known and anything_read:
            warnings.warn(
                "the masks cover every pixel of every frame: there was nothing to fill from",
                stacklevel=2,
            )
