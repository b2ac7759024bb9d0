"""propagation_gather: reads the colours a propagation state points at (SPEC 3.5c)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import check_same_device, check_sizes, check_tensor
from fused_inpaint._outputs import allocate_output, new_output
from fused_inpaint.ops._registry import define_kernel_op
from fused_inpaint.ops.fb_validity import hole_bytes
from fused_inpaint.ops.flow_propagate import check_frame_index, check_state


def gather_layout(frames: torch.Tensor) -> torch.memory_format:
    """The image's layout: channels_last when frames[:, 0] is (as reference.like_layout
    decides), else contiguous, also without frames (T = 0)."""
    channels_last = frames.shape[1] > 0 and frames[:, 0].is_contiguous(
        memory_format=torch.channels_last
    )
    return torch.channels_last if channels_last else torch.contiguous_format


def new_gather_outputs(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised (image, valid) for frames (N, T, C, H, W).

    image: (N, C, H, W) in frames' dtype, in gather_layout(frames); valid: (N, 1, H, W)
    bool. The C++ kernels allocate the same (csrc/common/propagation_gather.h), so the fake
    kernel's strides are the real ones.
    """
    n, _, c, h, w = frames.shape
    sizes = (n, c, h, w)
    image = allocate_output(
        "image",
        sizes,
        frames.dtype,
        lambda: torch.empty(
            sizes, dtype=frames.dtype, device=frames.device, memory_format=gather_layout(frames)
        ),
    )
    return image, new_output(frames, "valid", (n, 1, h, w), torch.bool)


def _fake(frames, holes, src_frame, src_pos, t0):
    return new_gather_outputs(frames)


OPS = define_kernel_op(
    "propagation_gather",
    "(Tensor frames, Tensor holes, Tensor src_frame, Tensor src_pos, int t0) -> (Tensor, Tensor)",
    _fake,
)


def propagation_gather(
    frames: torch.Tensor,
    holes: torch.Tensor,
    src_frame: torch.Tensor,
    src_pos: torch.Tensor,
    *,
    t0: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples each pixel's source: the colour a propagation state points at.

    frames: (N, T, C, H, W), frames t0 .. t0+T-1 of the clip; holes: (N, T, 1, H, W),
    nonzero = hole; src_frame: (N, 1, H, W) int32 (absolute frame index, -1 = none) and
    src_pos: (N, 2, H, W) float32 (x, y). Returns (image, valid): image (N, C, H, W) in
    frames' dtype, the bilinear sample of frame src_frame at src_pos over its taps in frame
    and outside that frame's hole, renormalised (channels_last when frames[:, 0] is); valid
    (N, 1, H, W) bool where the kept weight is > 1e-3 and the source lies in the chunk,
    image 0 elsewhere. T = 0 (no frames) is a chunk that holds no source: image 0 (contiguous)
    and valid false everywhere. No gradients.
    """
    check_tensor("frames", frames, "(N, T, C, H, W)", 5)
    n, length, _, h, w = frames.shape
    check_tensor("holes", holes, "(N, T, 1, H, W)", 5, floating=False)
    check_sizes("holes", holes, "(N, T, 1, H, W)", {0: n, 1: length, 2: 1, 3: h, 4: w})
    check_same_device("holes", holes, "frames", frames)
    check_state("src_frame", src_frame, "src_pos", src_pos, "frames", frames)
    check_frame_index("t0", t0)

    args = (frames.detach(), hole_bytes(holes), src_frame.detach(), src_pos.detach())
    backend = _backend.resolve("propagation_gather", frames)
    if backend == "torch":
        return reference.propagation_gather(*args, t0=t0)
    return OPS[backend](*args, t0)
