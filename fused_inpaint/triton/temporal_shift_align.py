"""temporal_shift_align in Triton (SPEC 3.4): the launchers registered as
``temporal_shift_align_triton`` and ``temporal_shift_align_backward_triton``.

Each program takes a segment of BLOCK_W pixels of one row of one frame: it reads the
flow and trust mask of its pixels once, inline at their own resolution, then walks the
channels of each group in [BLOCK_C, BLOCK_W] tiles. Both kernels launch without fused
multiply-adds: the flow vector is scaled and rounded before the pixel is added, as on the
CPU, so every backend picks the same taps and decides alike what lies in the frame. The
scales W / Wf and H / Hf come from the launcher (reference.flow_scale, exact in float64)
and are rounded once to the coordinate dtype, as every backend rounds them.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._checks import HALF_PRECISION
from fused_inpaint._outputs import new_output, output_like
from fused_inpaint.ops.temporal_shift_align import FLOW_SIDES, flows_are_read
from fused_inpaint.reference import flow_scale
from fused_inpaint.triton._grid import row_segment
from fused_inpaint.triton._sampling import (
    BILINEAR,
    ZEROS,
    axis_taps,
    blend4,
    blend4_grad,
    gather4,
    in_frame,
    scatter4,
)

BLOCK_W = 64
BLOCK_C = 8


@triton.jit
def alignment(
    flow_ptr, valid_ptr, n, k, row, col, in_row, H, W, Hf, Wf, scale_x, scale_y,
    f_n, f_k, f_c, f_h, f_w, v_n, v_k, v_h, v_w,
    HAS_VALID: tl.constexpr, COORD: tl.constexpr,
):  # fmt: skip
    """Where pixels (row, col) sample along flow frame k, and the trust in it: (taps of x,
    taps of y, weight). The flow pixel is the nearest one,
    (min(row Hf / H, Hf-1), min(col Wf / W, Wf-1)); its vector is scaled to feature pixels
    by (scale_x, scale_y), COORD scalars."""
    fy = tl.minimum(row * Hf // H, Hf - 1)
    fx = tl.minimum(col * Wf // W, Wf - 1)
    flow_at = flow_ptr + n * f_n + k * f_k + fy * f_h + fx * f_w
    dx = tl.load(flow_at, mask=in_row, other=0.0).to(COORD) * scale_x
    dy = tl.load(flow_at + f_c, mask=in_row, other=0.0).to(COORD) * scale_y
    qx = col.to(COORD) + dx
    qy = row.to(COORD) + dy
    one = tl.full([], 1.0, COORD)
    zero = tl.full([], 0.0, COORD)
    x0, in_x0, in_x1, wx1, dqx = axis_taps(qx, W, one, zero, BILINEAR, ZEROS)
    y0, in_y0, in_y1, wy1, dqy = axis_taps(qy, H, one, zero, BILINEAR, ZEROS)
    inframe = in_frame(qx, W) & in_frame(qy, H)
    weight = inframe.to(COORD)
    if HAS_VALID:
        valid_at = valid_ptr + n * v_n + k * v_k + fy * v_h + fx * v_w
        weight = weight * tl.load(valid_at, mask=in_row, other=0.0).to(COORD)
    return x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight


@triton.jit
def blend_group(
    x_ptr, out_ptr, n, t, source, row, col, in_row, c_begin, c_end,
    x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight,
    x_n, x_t, x_c, x_h, x_w, o_n, o_t, o_c, o_h, o_w,
    COORD: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """out[n, t, c] = w S(x[n, source, c], q) + (1 - w) x[n, t, c] for c in [c_begin, c_end),
    skipping the reads a weight of exactly 0 or 1 makes useless."""
    w = weight[None, :]
    tap00 = (y0 * x_h + x0 * x_w)[None, :]
    own_at = (row * x_h + col * x_w)[None, :]
    out_at = (row * o_h + col * o_w)[None, :]
    for c_start in range(c_begin, c_end, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < c_end) & in_row[None, :]
        v00, v01, v10, v11 = gather4(
            x_ptr + n * x_n + source * x_t + c * x_c + tap00, x_h, x_w, lanes & (w != 0.0),
            in_x0[None, :], in_x1[None, :], in_y0[None, :], in_y1[None, :], COORD,
        )  # fmt: skip
        sampled = blend4(v00, v01, v10, v11, wx1[None, :], wy1[None, :])
        own_ptr = x_ptr + n * x_n + t * x_t + c * x_c + own_at
        own = tl.load(own_ptr, mask=lanes & (w != 1.0), other=0.0).to(COORD)
        value = tl.where(w == 1.0, sampled, tl.where(w == 0.0, own, w * sampled + (1.0 - w) * own))
        out_ptr_at = out_ptr + n * o_n + t * o_t + c * o_c + out_at
        tl.store(out_ptr_at, value.to(out_ptr.dtype.element_ty), mask=lanes)


@triton.jit
def fill_group(
    x_ptr, out_ptr, n, t, row, col, in_row, c_begin, c_end, COPY: tl.constexpr,
    x_n, x_t, x_c, x_h, x_w, o_n, o_t, o_c, o_h, o_w, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """out[n, t, c] = x[n, t, c] (COPY) or 0 for c in [c_begin, c_end)."""
    for c_start in range(c_begin, c_end, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < c_end) & in_row[None, :]
        x_at = x_ptr + n * x_n + t * x_t + c * x_c + (row * x_h + col * x_w)[None, :]
        value = tl.load(x_at, mask=lanes & COPY, other=0.0)
        out_at = out_ptr + n * o_n + t * o_t + c * o_c + (row * o_h + col * o_w)[None, :]
        tl.store(out_at, value, mask=lanes)


@triton.jit(do_not_specialize=["H", "W", "Hf", "Wf"])
def shift_align_fwd_kernel(
    x_ptr, fw_ptr, bw_ptr, vfw_ptr, vbw_ptr, out_ptr, T, C, H, W, Hf, Wf,
    scale_x: tl.float64, scale_y: tl.float64, fold, end,
    x_n, x_t, x_c, x_h, x_w, o_n, o_t, o_c, o_h, o_w,
    fw_n, fw_k, fw_c, fw_h, fw_w, bw_n, bw_k, bw_c, bw_h, bw_w,
    vfw_n, vfw_k, vfw_h, vfw_w, vbw_n, vbw_k, vbw_h, vbw_w,
    HAS_VALID_FW: tl.constexpr, HAS_VALID_BW: tl.constexpr, CAUSAL: tl.constexpr,
    COORD: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """One row segment of frame t: groups [0, fold) ahead, [fold, end) behind, rest kept.
    scale_x, scale_y: W / Wf, H / Hf in float64 (a plain float argument is float32)."""
    nt, row, col, in_row = row_segment(H, W, BLOCK_W)
    scale_x = tl.full([], scale_x, COORD)
    scale_y = tl.full([], scale_y, COORD)
    n = nt // T
    t = nt % T
    strides = (x_n, x_t, x_c, x_h, x_w, o_n, o_t, o_c, o_h, o_w)
    if CAUSAL:
        fill_group(x_ptr, out_ptr, n, t, row, col, in_row, 0, fold, True, *strides, BLOCK_C)
    elif t + 1 < T:
        x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight = alignment(
            fw_ptr, vfw_ptr, n, t, row, col, in_row, H, W, Hf, Wf, scale_x, scale_y,
            fw_n, fw_k, fw_c, fw_h, fw_w, vfw_n, vfw_k, vfw_h, vfw_w, HAS_VALID_FW, COORD,
        )  # fmt: skip
        blend_group(x_ptr, out_ptr, n, t, t + 1, row, col, in_row, 0, fold,
                    x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight,
                    *strides, COORD, BLOCK_C)  # fmt: skip
    else:
        fill_group(x_ptr, out_ptr, n, t, row, col, in_row, 0, fold, False, *strides, BLOCK_C)
    if t > 0:
        x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight = alignment(
            bw_ptr, vbw_ptr, n, t - 1, row, col, in_row, H, W, Hf, Wf, scale_x, scale_y,
            bw_n, bw_k, bw_c, bw_h, bw_w, vbw_n, vbw_k, vbw_h, vbw_w, HAS_VALID_BW, COORD,
        )  # fmt: skip
        blend_group(x_ptr, out_ptr, n, t, t - 1, row, col, in_row, fold, end,
                    x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight,
                    *strides, COORD, BLOCK_C)  # fmt: skip
    else:
        fill_group(x_ptr, out_ptr, n, t, row, col, in_row, fold, end, False, *strides, BLOCK_C)
    fill_group(x_ptr, out_ptr, n, t, row, col, in_row, end, C, True, *strides, BLOCK_C)


@triton.jit
def backward_group(
    grad_out_ptr, x_ptr, acc_ptr, grad_flow_ptr, n, t, source, k, row, col, in_row,
    c_begin, c_end, H, W, Hf, Wf, scale_x, scale_y, flow_ptr, valid_ptr,
    g_n, g_t, g_c, g_h, g_w, x_n, x_t, x_c, x_h, x_w, a_n, a_t, a_c, a_h, a_w,
    f_n, f_k, f_c, f_h, f_w, v_n, v_k, v_h, v_w, d_n, d_k, d_c, d_h, d_w,
    HAS_VALID: tl.constexpr, FLOW_GRAD: tl.constexpr, COORD: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    # Strides: g grad_out, x, a acc, f flow, v valid, d grad_flow.
    """Adjoint of blend_group for channels [c_begin, c_end) of frame t: the own-feature and
    scattered terms into acc (grad_x's shifted channels), the flow gradient into grad_flow
    frame k at the flow pixels read (atomics: several feature pixels may share one)."""
    x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1, weight = alignment(
        flow_ptr, valid_ptr, n, k, row, col, in_row, H, W, Hf, Wf, scale_x, scale_y,
        f_n, f_k, f_c, f_h, f_w, v_n, v_k, v_h, v_w, HAS_VALID, COORD,
    )  # fmt: skip
    w = weight[None, :]
    in_x0, in_x1, in_y0, in_y1 = in_x0[None, :], in_x1[None, :], in_y0[None, :], in_y1[None, :]
    wx1_2d, wy1_2d = wx1[None, :], wy1[None, :]
    sum_x = tl.zeros_like(wx1)
    sum_y = tl.zeros_like(wy1)
    for c_start in range(c_begin, c_end, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)[:, None]
        lanes = (c < c_end) & in_row[None, :]
        g_at = grad_out_ptr + n * g_n + t * g_t + c * g_c + (row * g_h + col * g_w)[None, :]
        g = tl.load(g_at, mask=lanes, other=0.0).to(COORD)
        own_at = acc_ptr + n * a_n + t * a_t + c * a_c + (row * a_h + col * a_w)[None, :]
        tl.atomic_add(own_at, (1.0 - w) * g, mask=lanes & (w != 1.0), sem="relaxed")
        sampled = lanes & (w != 0.0)
        tap00 = acc_ptr + n * a_n + source * a_t + c * a_c + (y0 * a_h + x0 * a_w)[None, :]
        scatter4(tap00, a_h, a_w, sampled, in_x0, in_x1, in_y0, in_y1, w * g, wx1_2d, wy1_2d)
        if FLOW_GRAD:
            x_tap00 = x_ptr + n * x_n + source * x_t + c * x_c + (y0 * x_h + x0 * x_w)[None, :]
            v00, v01, v10, v11 = gather4(x_tap00, x_h, x_w, sampled, in_x0, in_x1, in_y0, in_y1,
                                         COORD)  # fmt: skip
            d_wx1, d_wy1 = blend4_grad(v00, v01, v10, v11, wx1_2d, wy1_2d)
            sum_x += tl.sum(w * g * d_wx1, axis=0)
            sum_y += tl.sum(w * g * d_wy1, axis=0)
    if FLOW_GRAD:
        fy = tl.minimum(row * Hf // H, Hf - 1)
        fx = tl.minimum(col * Wf // W, Wf - 1)
        grad_at = grad_flow_ptr + n * d_n + k * d_k + fy * d_h + fx * d_w
        used = in_row & (weight != 0.0)
        tl.atomic_add(grad_at, sum_x * scale_x, mask=used, sem="relaxed")
        tl.atomic_add(grad_at + d_c, sum_y * scale_y, mask=used, sem="relaxed")


@triton.jit(do_not_specialize=["H", "W", "Hf", "Wf"])
def shift_align_bwd_kernel(
    grad_out_ptr, x_ptr, fw_ptr, bw_ptr, vfw_ptr, vbw_ptr, acc_ptr, grad_x_ptr,
    grad_fw_ptr, grad_bw_ptr, T, C, H, W, Hf, Wf, scale_x: tl.float64, scale_y: tl.float64,
    fold, end,
    g_n, g_t, g_c, g_h, g_w, x_n, x_t, x_c, x_h, x_w, a_n, a_t, a_c, a_h, a_w,
    o_n, o_t, o_c, o_h, o_w,
    fw_n, fw_k, fw_c, fw_h, fw_w, bw_n, bw_k, bw_c, bw_h, bw_w,
    vfw_n, vfw_k, vfw_h, vfw_w, vbw_n, vbw_k, vbw_h, vbw_w,
    dfw_n, dfw_k, dfw_c, dfw_h, dfw_w, dbw_n, dbw_k, dbw_c, dbw_h, dbw_w,
    HAS_VALID_FW: tl.constexpr, HAS_VALID_BW: tl.constexpr, CAUSAL: tl.constexpr,
    FLOW_GRAD: tl.constexpr, COORD: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_W: tl.constexpr,
):  # fmt: skip
    """acc (zeroed; float32 under half precision): grad_x's channels [0, end); grad_x
    (strides o_*): the rest, written once; grad_fw, grad_bw (zeroed) at flow resolution.
    scale_x, scale_y: W / Wf, H / Hf in float64."""
    nt, row, col, in_row = row_segment(H, W, BLOCK_W)
    scale_x = tl.full([], scale_x, COORD)
    scale_y = tl.full([], scale_y, COORD)
    n = nt // T
    t = nt % T
    common = (g_n, g_t, g_c, g_h, g_w, x_n, x_t, x_c, x_h, x_w, a_n, a_t, a_c, a_h, a_w)
    if CAUSAL:  # the group ahead is kept: its gradient passes straight through
        fill_group(grad_out_ptr, acc_ptr, n, t, row, col, in_row, 0, fold, True,
                   g_n, g_t, g_c, g_h, g_w, a_n, a_t, a_c, a_h, a_w, BLOCK_C)  # fmt: skip
    elif t + 1 < T:
        backward_group(grad_out_ptr, x_ptr, acc_ptr, grad_fw_ptr, n, t, t + 1, t, row, col,
                       in_row, 0, fold, H, W, Hf, Wf, scale_x, scale_y, fw_ptr, vfw_ptr, *common,
                       fw_n, fw_k, fw_c, fw_h, fw_w, vfw_n, vfw_k, vfw_h, vfw_w,
                       dfw_n, dfw_k, dfw_c, dfw_h, dfw_w,
                       HAS_VALID_FW, FLOW_GRAD, COORD, BLOCK_C)  # fmt: skip
    if t > 0:
        backward_group(grad_out_ptr, x_ptr, acc_ptr, grad_bw_ptr, n, t, t - 1, t - 1, row, col,
                       in_row, fold, end, H, W, Hf, Wf, scale_x, scale_y, bw_ptr, vbw_ptr, *common,
                       bw_n, bw_k, bw_c, bw_h, bw_w, vbw_n, vbw_k, vbw_h, vbw_w,
                       dbw_n, dbw_k, dbw_c, dbw_h, dbw_w,
                       HAS_VALID_BW, FLOW_GRAD, COORD, BLOCK_C)  # fmt: skip
    fill_group(grad_out_ptr, grad_x_ptr, n, t, row, col, in_row, end, C, True,
               g_n, g_t, g_c, g_h, g_w, o_n, o_t, o_c, o_h, o_w, BLOCK_C)  # fmt: skip


def _check_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold) -> None:
    """The public op's checks, repeated for direct callers; RuntimeError like the C++ ones."""
    if fold < 0:
        raise RuntimeError(f"fold must be >= 0, got {fold}")
    if x.dim() != 5:
        raise RuntimeError(f"x must have shape (N, T, C, H, W), got {tuple(x.shape)}")
    n, t = x.shape[:2]
    if t < 1:
        raise RuntimeError(f"x must have at least one frame, got T = {t}")
    for name, flow in (("flow_fw", flow_fw), ("flow_bw", flow_bw)):
        if flow.dim() != 5 or flow.shape[:3] != (n, t - 1, 2):
            raise RuntimeError(f"{name} must have shape (N, T-1, 2, Hf, Wf), got {flow.shape}")
        if flows_are_read(x) and min(flow.shape[3:]) < 1:
            raise RuntimeError(f"{name} {FLOW_SIDES}, got {tuple(flow.shape)}")
        if flow.device != x.device:
            raise RuntimeError(f"{name} must be on x's device")
        half_x = x.dtype in HALF_PRECISION
        if flow.dtype not in (torch.float32, torch.float64) or (
            flow.dtype != x.dtype and not (flow.dtype == torch.float32 and half_x)
        ):
            raise RuntimeError(f"{name} must be float32 (or x's float64), got {flow.dtype}")
    if flow_bw.shape != flow_fw.shape:
        raise RuntimeError("flow_bw must have flow_fw's shape")
    for valid in (valid_fw, valid_bw):
        if valid is not None and (
            valid.shape != (*flow_fw.shape[:2], 1, *flow_fw.shape[3:])
            or valid.dtype != flow_fw.dtype
            or valid.device != x.device
        ):
            raise RuntimeError("valid must be (N, T-1, 1, Hf, Wf) in the flows' dtype")


def _mask_args(valid, flow):
    """(pointer, (n, k, h, w) strides) of a trust mask; the flow stands in when absent."""
    if valid is None:
        return flow, (0, 0, 0, 0)
    return valid, (valid.stride(0), valid.stride(1), valid.stride(3), valid.stride(4))


def _config(x, fold):
    """(grid, fold, end of the second group, coordinate dtype)."""
    n, t, c, h, w = x.shape
    fold = min(fold, c)
    coord = tl.float64 if x.dtype == torch.float64 else tl.float32
    return (n * t * h * triton.cdiv(w, BLOCK_W),), fold, min(2 * fold, c), coord


def forward(x, flow_fw, flow_bw, valid_fw, valid_bw, fold, causal):
    """x: (N, T, C, H, W), flows (N, T-1, 2, Hf, Wf), masks (N, T-1, 1, Hf, Wf) -> like x."""
    _check_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold)
    out = output_like(x, "temporal_shift_align's output")
    if out.numel() == 0:
        return out
    grid, fold, end, coord = _config(x, fold)
    vfw, vfw_strides = _mask_args(valid_fw, flow_fw)
    vbw, vbw_strides = _mask_args(valid_bw, flow_bw)
    _, t, c, h, w = x.shape
    hf, wf = flow_fw.shape[3:]
    shift_align_fwd_kernel[grid](
        x, flow_fw, flow_bw, vfw, vbw, out, t, c, h, w, hf, wf,
        flow_scale(w, wf), flow_scale(h, hf), fold, end, *x.stride(), *out.stride(),
        *flow_fw.stride(), *flow_bw.stride(), *vfw_strides, *vbw_strides,
        HAS_VALID_FW=valid_fw is not None, HAS_VALID_BW=valid_bw is not None,
        CAUSAL=bool(causal), COORD=coord, BLOCK_C=BLOCK_C, BLOCK_W=BLOCK_W,
        enable_fp_fusion=False,
    )  # fmt: skip
    return out


def backward(grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw, fold, causal, flow_grads):
    """-> (grad_x like x, grad_flow_fw, grad_flow_bw): zeroed like the flows, or empty when
    not asked for (``flow_grads``; causal mode has none for flow_fw)."""
    _check_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold)
    if grad_out.shape != x.shape or grad_out.dtype != x.dtype or grad_out.device != x.device:
        raise RuntimeError("grad_out must match x's shape, dtype and device")
    grid, fold, end, coord = _config(x, fold)
    want_fw, want_bw = flow_grads and not causal, flow_grads
    grad_fw = output_like(flow_fw, "grad_flow_fw", zero=True) if want_fw else flow_fw.new_empty(0)
    grad_bw = output_like(flow_bw, "grad_flow_bw", zero=True) if want_bw else flow_bw.new_empty(0)
    grad_x = output_like(x, "grad_x")
    n, t, c, h, w = x.shape
    hf, wf = flow_fw.shape[3:]
    # Half-precision atomics lose low bits (and the interpreter has none): float32 first.
    half = x.dtype in HALF_PRECISION
    acc = (
        new_output(x, "grad_x's float32 workspace", (n, t, end, h, w), torch.float32, zero=True)
        if half
        else grad_x[:, :, :end]
    )
    if not half:
        acc.zero_()
    if x.numel() > 0:
        vfw, vfw_strides = _mask_args(valid_fw, flow_fw)
        vbw, vbw_strides = _mask_args(valid_bw, flow_bw)
        dfw = grad_fw if want_fw else flow_fw  # never written without FLOW_GRAD / in causal
        dbw = grad_bw if want_bw else flow_bw
        shift_align_bwd_kernel[grid](
            grad_out, x, flow_fw, flow_bw, vfw, vbw, acc, grad_x, dfw, dbw,
            t, c, h, w, hf, wf, flow_scale(w, wf), flow_scale(h, hf), fold, end,
            *grad_out.stride(), *x.stride(), *acc.stride(), *grad_x.stride(),
            *flow_fw.stride(), *flow_bw.stride(), *vfw_strides, *vbw_strides,
            *dfw.stride(), *dbw.stride(),
            HAS_VALID_FW=valid_fw is not None, HAS_VALID_BW=valid_bw is not None,
            CAUSAL=bool(causal), FLOW_GRAD=bool(flow_grads), COORD=coord, BLOCK_C=BLOCK_C,
            BLOCK_W=BLOCK_W, enable_fp_fusion=False,
        )  # fmt: skip
    if half:
        grad_x[:, :, :end].copy_(acc)
    return grad_x, grad_fw, grad_bw
