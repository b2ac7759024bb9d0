"""flow_warp in Triton (SPEC 3.1): the launchers registered as ``flow_warp_triton`` and
``flow_warp_backward_triton`` for CPU (under TRITON_INTERPRET=1) and CUDA tensors.

Each program takes BLOCK_P pixels of the flattened (N, H, W), computes their taps once,
then walks the channels in [BLOCK_C, BLOCK_P] tiles. Every tensor goes in with its
strides: non-contiguous, channels_last and expanded inputs are never copied. Both
kernels launch without fused multiply-adds: the sample coordinate (p + f) * scale - shift
is rounded step by step as on the CPU, which near a side of 2^24 decides the taps.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._checks import HALF_PRECISION
from fused_inpaint._outputs import output_like
from fused_inpaint.triton._sampling import (
    BILINEAR,
    axis_scale_shift,
    axis_taps,
    blend4,
    blend4_grad,
    gather4,
    scatter4,
)

MAX_BLOCK_P = 256
CHANNELS_LAST_TILE = (64, 8)  # largest [BLOCK_C, BLOCK_P] under channels_last
# On a GPU the forward splits the channels over more programs while there are fewer pixel
# blocks than this (about what an H100 holds at once: 132 SMs x 16), so small frames fill it.
ENOUGH_PROGRAMS = 2048


@triton.jit
def pixel_block(H, W, P, BLOCK_P: tl.constexpr):
    """This program's block of the P = N * H * W pixels: (n, row, col, in_range), [BLOCK_P]."""
    pix = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    image_row = pix // W
    return image_row // H, image_row % H, pix % W, pix < P


@triton.jit
def sample_taps(
    flow_ptr, n, row, col, in_range, H, W, stride_fn, stride_fc, stride_fh, stride_fw,
    MODE: tl.constexpr, PADDING: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    COORD: tl.constexpr,
):  # fmt: skip
    """The taps of the sample points ``(col, row) + flow[n, :, row, col]``: the x taps, then
    the y taps, each as axis_taps returns them ([BLOCK_P])."""
    flow_at = flow_ptr + n * stride_fn + row * stride_fh + col * stride_fw
    fx = tl.load(flow_at, mask=in_range, other=0.0).to(COORD)
    fy = tl.load(flow_at + stride_fc, mask=in_range, other=0.0).to(COORD)
    scale_x, shift_x = axis_scale_shift(W, ALIGN_CORNERS, COORD)
    scale_y, shift_y = axis_scale_shift(H, ALIGN_CORNERS, COORD)
    x0, in_x0, in_x1, wx1, dqx = axis_taps(col.to(COORD) + fx, W, scale_x, shift_x, MODE, PADDING)
    y0, in_y0, in_y1, wy1, dqy = axis_taps(row.to(COORD) + fy, H, scale_y, shift_y, MODE, PADDING)
    return x0, in_x0, in_x1, wx1, dqx, y0, in_y0, in_y1, wy1, dqy


# H and W stay runtime values even when 1: the taps convert them to COORD.
@triton.jit(do_not_specialize=["H", "W"])
def flow_warp_fwd_kernel(
    x_ptr, flow_ptr, out_ptr, C, H, W, P, channels_per_program,
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_fn, stride_fc, stride_fh, stride_fw,
    stride_on, stride_oc, stride_oh, stride_ow,
    MODE: tl.constexpr, PADDING: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    COORD: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """out[n, c, y, x] = x[n, c] sampled at (x, y) + flow[n, :, y, x]. Grid: (pixel blocks,
    groups of channels_per_program channels, a multiple of BLOCK_C)."""
    n, row, col, in_range = pixel_block(H, W, P, BLOCK_P)
    x0, in_x0, in_x1, wx1, dqx, y0, in_y0, in_y1, wy1, dqy = sample_taps(
        flow_ptr, n, row, col, in_range, H, W, stride_fn, stride_fc, stride_fh, stride_fw,
        MODE, PADDING, ALIGN_CORNERS, COORD,
    )  # fmt: skip
    tap00 = (n * stride_xn + y0 * stride_xh + x0 * stride_xw)[None, :]
    out_at = (n * stride_on + row * stride_oh + col * stride_ow)[None, :]
    in_x0, in_x1, in_y0, in_y1 = in_x0[None, :], in_x1[None, :], in_y0[None, :], in_y1[None, :]
    wx1, wy1 = wx1[None, :], wy1[None, :]
    c_begin = tl.program_id(1) * channels_per_program
    for c_start in range(c_begin, tl.minimum(c_begin + channels_per_program, C), BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < C) & in_range[None, :]
        v00, v01, v10, v11 = gather4(
            x_ptr + c * stride_xc + tap00, stride_xh, stride_xw,
            lanes, in_x0, in_x1, in_y0, in_y1, COORD,
        )  # fmt: skip
        value = blend4(v00, v01, v10, v11, wx1, wy1)
        tl.store(out_ptr + c * stride_oc + out_at, value.to(out_ptr.dtype.element_ty), mask=lanes)


@triton.jit(do_not_specialize=["H", "W"])
def flow_warp_bwd_kernel(
    grad_out_ptr, x_ptr, flow_ptr, grad_x_ptr, grad_flow_ptr, C, H, W, P,
    stride_gn, stride_gc, stride_gh, stride_gw,
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_fn, stride_fc, stride_fh, stride_fw,
    stride_an, stride_ac, stride_ah, stride_aw,
    stride_dn, stride_dc, stride_dh, stride_dw,
    MODE: tl.constexpr, PADDING: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    COORD: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """Scatters grad_out into grad_x (zeroed, COORD dtype) at the taps and writes grad_flow,
    a sum over all channels, once per pixel. Strides: g grad_out, a grad_x, d grad_flow.
    Grid: (pixel blocks,)."""
    n, row, col, in_range = pixel_block(H, W, P, BLOCK_P)
    x0, in_x0, in_x1, wx1, dqx, y0, in_y0, in_y1, wy1, dqy = sample_taps(
        flow_ptr, n, row, col, in_range, H, W, stride_fn, stride_fc, stride_fh, stride_fw,
        MODE, PADDING, ALIGN_CORNERS, COORD,
    )  # fmt: skip
    grad_out_at = (n * stride_gn + row * stride_gh + col * stride_gw)[None, :]
    x_tap00 = (n * stride_xn + y0 * stride_xh + x0 * stride_xw)[None, :]
    grad_x_tap00 = (n * stride_an + y0 * stride_ah + x0 * stride_aw)[None, :]
    in_x0, in_x1, in_y0, in_y1 = in_x0[None, :], in_x1[None, :], in_y0[None, :], in_y1[None, :]
    wx1_2d, wy1_2d = wx1[None, :], wy1[None, :]
    # grad_out * d(blend)/d(w1), summed over channels (across tiles here, within a tile
    # after the loop) and times dq at the end.
    sum_x = tl.zeros([BLOCK_C, BLOCK_P], COORD)
    sum_y = tl.zeros([BLOCK_C, BLOCK_P], COORD)
    for c_start in range(0, C, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < C) & in_range[None, :]
        g = tl.load(grad_out_ptr + c * stride_gc + grad_out_at, mask=lanes, other=0.0).to(COORD)
        grad_x_at = grad_x_ptr + c * stride_ac + grad_x_tap00
        if MODE == BILINEAR:
            scatter4(
                grad_x_at, stride_ah, stride_aw,
                lanes, in_x0, in_x1, in_y0, in_y1, g, wx1_2d, wy1_2d,
            )  # fmt: skip
            v00, v01, v10, v11 = gather4(
                x_ptr + c * stride_xc + x_tap00, stride_xh, stride_xw,
                lanes, in_x0, in_x1, in_y0, in_y1, COORD,
            )  # fmt: skip
            d_wx1, d_wy1 = blend4_grad(v00, v01, v10, v11, wx1_2d, wy1_2d)
            sum_x += g * d_wx1
            sum_y += g * d_wy1
        else:  # nearest: one tap, and no flow gradient
            tl.atomic_add(grad_x_at, g, mask=lanes & in_y0 & in_x0, sem="relaxed")
    grad_flow_at = grad_flow_ptr + n * stride_dn + row * stride_dh + col * stride_dw
    grad_flow_ty = grad_flow_ptr.dtype.element_ty
    grad_fx = tl.sum(sum_x, axis=0) * dqx
    grad_fy = tl.sum(sum_y, axis=0) * dqy
    tl.store(grad_flow_at, grad_fx.to(grad_flow_ty), mask=in_range)
    tl.store(grad_flow_at + stride_dc, grad_fy.to(grad_flow_ty), mask=in_range)


def _check_args(x: torch.Tensor, flow: torch.Tensor, mode: int, padding_mode: int) -> None:
    """The public op's checks, repeated for direct callers of the registered op; like the
    C++ kernels' checks, they raise RuntimeError."""
    if x.dim() != 4 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise RuntimeError(
            f"x must be a float16/bfloat16/float32/float64 tensor of shape (N, C, H, W), got "
            f"{x.dtype} {tuple(x.shape)}"
        )
    n, _, h, w = x.shape
    if flow.shape != (n, 2, h, w):
        raise RuntimeError(
            f"flow must have shape (N, 2, H, W) = {(n, 2, h, w)}, got {tuple(flow.shape)}"
        )
    if flow.device != x.device:
        raise RuntimeError(f"flow must be on x's device ({x.device}), got {flow.device}")
    if flow.dtype != x.dtype and not (flow.dtype == torch.float32 and x.dtype in HALF_PRECISION):
        raise RuntimeError(
            f"flow must have x's dtype ({x.dtype}), or float32 when x is half precision; got "
            f"{flow.dtype}"
        )
    if mode not in (0, 1):
        raise RuntimeError(f"mode must be 0 (bilinear) or 1 (nearest), got {mode}")
    if padding_mode not in (0, 1):
        raise RuntimeError(f"padding_mode must be 0 (zeros) or 1 (border), got {padding_mode}")


def _launch_config(x: torch.Tensor) -> dict:
    """The kernels' common meta-parameters: coordinate dtype, tile shape and warps.

    On a GPU under channels_last the tile spans channels, which are contiguous. Otherwise
    it is one channel wide: then every Triton version gives the gathers and the stores of
    a tile the same layout, where with more channels Triton 3.6 shuffles each tile through
    shared memory. The interpreter (CPU tensors) runs programs and loop iterations one
    after another, so there the tiles are as large as the tensor allows.
    """
    n, channels, h, w = x.shape
    pixels = triton.next_power_of_2(n * h * w)
    if not x.is_cuda:
        block_c, block_p = min(triton.next_power_of_2(channels), 64), min(pixels, 256)
    elif x.stride(1) == 1 and channels > 1:
        block_c = min(triton.next_power_of_2(channels), CHANNELS_LAST_TILE[0])
        block_p = min(pixels, CHANNELS_LAST_TILE[1])
    else:
        block_c, block_p = 1, min(pixels, MAX_BLOCK_P)
    coord = tl.float64 if x.dtype == torch.float64 else tl.float32
    num_warps = max(1, min(4, block_c * block_p // 64))
    return dict(COORD=coord, BLOCK_C=block_c, BLOCK_P=block_p, num_warps=num_warps)


def forward(
    x: torch.Tensor, flow: torch.Tensor, mode: int, padding_mode: int, align_corners: bool
) -> torch.Tensor:
    """x: (N, C, H, W), flow: (N, 2, H, W) -> (N, C, H, W) with x's dtype and strides."""
    _check_args(x, flow, mode, padding_mode)
    out = output_like(x, "flow_warp's output")
    if out.numel() == 0:
        return out
    n, channels, h, w = x.shape
    config = _launch_config(x)
    blocks = triton.cdiv(n * h * w, config["BLOCK_P"])
    chunks = triton.cdiv(channels, config["BLOCK_C"])
    groups = min(chunks, triton.cdiv(ENOUGH_PROGRAMS, blocks)) if x.is_cuda else 1
    channels_per_program = triton.cdiv(chunks, groups) * config["BLOCK_C"]
    grid = (blocks, triton.cdiv(channels, channels_per_program))
    flow_warp_fwd_kernel[grid](
        x, flow, out, channels, h, w, n * h * w, channels_per_program,
        *x.stride(), *flow.stride(), *out.stride(),
        MODE=mode, PADDING=padding_mode, ALIGN_CORNERS=bool(align_corners), **config,
        enable_fp_fusion=False,
    )  # fmt: skip
    return out


def backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    flow: torch.Tensor,
    mode: int,
    padding_mode: int,
    align_corners: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """grad_out: (N, C, H, W) -> (grad_x like x, grad_flow like flow)."""
    _check_args(x, flow, mode, padding_mode)
    if grad_out.shape != x.shape or grad_out.dtype != x.dtype or grad_out.device != x.device:
        raise RuntimeError(
            f"grad_out must match x ({x.dtype} {tuple(x.shape)} on {x.device}), got "
            f"{grad_out.dtype} {tuple(grad_out.shape)} on {grad_out.device}"
        )
    n, channels, h, w = x.shape
    half = x.dtype in HALF_PRECISION
    # Half-precision atomics lose low bits (and the interpreter has none): accumulate in
    # float32, then cast once.
    grad_x = output_like(x, "grad_x", zero=not half)
    grad_flow = output_like(flow, "grad_flow")
    if x.numel() == 0:
        return grad_x, grad_flow.zero_()
    accum = (
        output_like(x, "grad_x's float32 workspace", dtype=torch.float32, zero=True)
        if half
        else grad_x
    )
    config = _launch_config(x)
    grid = (triton.cdiv(n * h * w, config["BLOCK_P"]),)
    flow_warp_bwd_kernel[grid](
        grad_out, x, flow, accum, grad_flow, channels, h, w, n * h * w,
        *grad_out.stride(), *x.stride(), *flow.stride(), *accum.stride(), *grad_flow.stride(),
        MODE=mode, PADDING=padding_mode, ALIGN_CORNERS=bool(align_corners), **config,
        enable_fp_fusion=False,
    )  # fmt: skip
    if half:
        grad_x.copy_(accum)
    return grad_x, grad_flow
