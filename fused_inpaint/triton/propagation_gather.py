"""propagation_gather in Triton (SPEC 3.5c): the launcher registered as
``propagation_gather_triton``.

Each program takes a segment of BLOCK_W pixels of one row: it reads their states once,
weighs the four taps of each source frame (reading a hole byte only for taps of nonzero
weight), then walks the channels in [BLOCK_C, BLOCK_W] tiles, loading only the taps that
weigh. Launched without fused multiply-adds, so the kept weight, hence ``valid``, is
decided as on every other backend.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint.ops.propagation_gather import new_gather_outputs
from fused_inpaint.triton._grid import row_segment
from fused_inpaint.triton._math import divide
from fused_inpaint.triton._sampling import BILINEAR, ZEROS, axis_taps

BLOCK_W = 64
MAX_BLOCK_C = 8


@triton.jit
def kept_weight(holes_at, inside, wx, wy):
    """A tap's weight (x weight) * (y weight): 0 out of frame or in the source frame's hole."""
    w = tl.where(inside, wx * wy, 0.0)
    in_hole = tl.load(holes_at, mask=w > 0.0, other=0) != 0
    return tl.where(in_hole, 0.0, w)


@triton.jit
def load_tap(at, lanes, w, COORD: tl.constexpr):
    """A tap's values [BLOCK_C, BLOCK_W]; a tap of weight 0 is never read."""
    return tl.load(at, mask=lanes & (w > 0.0)[None, :], other=0.0).to(COORD)


@triton.jit(do_not_specialize=["T", "C", "H", "W", "t0"])
def propagation_gather_kernel(
    frames_ptr, holes_ptr, frame_ptr, pos_ptr, image_ptr, valid_ptr, T, C, H, W, t0,
    f_n, f_t, f_c, f_h, f_w, holes_n, holes_t, holes_h, holes_w,
    frame_n, frame_h, frame_w, pos_n, pos_c, pos_h, pos_w,
    image_n, image_c, image_h, image_w, valid_n, valid_h, valid_w,
    COORD: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """image, valid from frames (N, T, C, H, W) t0 .. t0+T-1 and a state (frame, pos)."""
    n, row, col, in_row = row_segment(H, W, BLOCK_W)
    source = tl.load(frame_ptr + n * frame_n + row * frame_h + col * frame_w, mask=in_row, other=-1)
    k = source.to(tl.int64) - t0  # the source's frame in the chunk
    in_chunk = in_row & (source >= 0) & (k >= 0) & (k < T)
    k = tl.where(in_chunk, k, 0)
    pos_at = pos_ptr + n * pos_n + row * pos_h + col * pos_w
    px = tl.load(pos_at, mask=in_chunk, other=0.0).to(COORD)
    py = tl.load(pos_at + pos_c, mask=in_chunk, other=0.0).to(COORD)
    one = tl.full([], 1.0, COORD)
    zero = tl.full([], 0.0, COORD)
    x0, in_x0, in_x1, wx1, _ = axis_taps(px, W, one, zero, BILINEAR, ZEROS)
    y0, in_y0, in_y1, wy1, _ = axis_taps(py, H, one, zero, BILINEAR, ZEROS)
    in_y0 = in_y0 & in_chunk
    in_y1 = in_y1 & in_chunk
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1
    # The reference's taps and order: (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1).
    holes00 = holes_ptr + n * holes_n + k * holes_t + y0 * holes_h + x0 * holes_w
    w00 = kept_weight(holes00, in_x0 & in_y0, wx0, wy0)
    w01 = kept_weight(holes00 + holes_w, in_x1 & in_y0, wx1, wy0)
    w10 = kept_weight(holes00 + holes_h, in_x0 & in_y1, wx0, wy1)
    w11 = kept_weight(holes00 + holes_h + holes_w, in_x1 & in_y1, wx1, wy1)
    weight = w00 + w01 + w10 + w11
    valid = weight > 1e-3  # out of the chunk, weight stays 0
    tl.store(valid_ptr + n * valid_n + row * valid_h + col * valid_w, valid, mask=in_row)
    tap00 = (n * f_n + k * f_t + y0 * f_h + x0 * f_w)[None, :]
    image_at = (n * image_n + row * image_h + col * image_w)[None, :]
    for c_start in range(0, C, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < C) & valid[None, :]
        at = frames_ptr + c * f_c + tap00
        total = w00[None, :] * load_tap(at, lanes, w00, COORD)
        total += w01[None, :] * load_tap(at + f_w, lanes, w01, COORD)
        total += w10[None, :] * load_tap(at + f_h, lanes, w10, COORD)
        total += w11[None, :] * load_tap(at + f_h + f_w, lanes, w11, COORD)
        renormalised = divide(total, tl.where(valid, weight, 1.0)[None, :])
        value = tl.where(valid[None, :], renormalised, 0.0).to(image_ptr.dtype.element_ty)
        tl.store(image_ptr + c * image_c + image_at, value, mask=(c < C) & in_row[None, :])


def _check_args(frames, holes, src_frame, src_pos, t0) -> None:
    """The public op's checks, repeated for direct callers; RuntimeError like the C++ ones."""
    if frames.dim() != 5 or not frames.is_floating_point():
        raise RuntimeError(f"frames must be a float tensor (N, T, C, H, W), got {frames.shape}")
    n, length, _, h, w = frames.shape
    for name, x, shape, dtype in (
        ("holes", holes, (n, length, 1, h, w), torch.uint8),
        ("src_frame", src_frame, (n, 1, h, w), torch.int32),
        ("src_pos", src_pos, (n, 2, h, w), torch.float32),
    ):
        if x.shape != shape or x.dtype != dtype or x.device != frames.device:
            raise RuntimeError(
                f"{name} must be {dtype} of shape {shape} on {frames.device}, got {x.dtype} "
                f"{tuple(x.shape)} on {x.device}"
            )
    if not 0 <= t0 < 2**31:
        raise RuntimeError(f"t0 must be a frame index in [0, 2^31), got {t0}")


def forward(frames, holes, src_frame, src_pos, t0):
    """-> (image (N, C, H, W) in frames' dtype, valid (N, 1, H, W) bool)."""
    _check_args(frames, holes, src_frame, src_pos, t0)
    image, valid = new_gather_outputs(frames)
    if valid.numel() == 0:
        return image, valid
    if frames.shape[1] == 0:  # no frames: every source lies outside the chunk
        return image.zero_(), valid.zero_()
    n, length, channels, h, w = frames.shape
    grid = (n * h * triton.cdiv(w, BLOCK_W),)
    propagation_gather_kernel[grid](
        frames, holes, src_frame, src_pos, image, valid, length, channels, h, w, t0,
        *frames.stride(), holes.stride(0), holes.stride(1), holes.stride(3), holes.stride(4),
        src_frame.stride(0), src_frame.stride(2), src_frame.stride(3), *src_pos.stride(),
        *image.stride(), valid.stride(0), valid.stride(2), valid.stride(3),
        COORD=tl.float64 if frames.dtype == torch.float64 else tl.float32,
        BLOCK_C=min(triton.next_power_of_2(max(channels, 1)), MAX_BLOCK_C), BLOCK_W=BLOCK_W,
        enable_fp_fusion=False,
    )  # fmt: skip
    return image, valid
