"""fb_validity in Triton (SPEC 3.2): the launcher registered as ``fb_validity_triton``.

Each program tests a segment of BLOCK_W pixels of one row in both directions, so each flow
is read once from memory; the bilinear gathers of the other flow hit the same lines.
Kernels that run the consistency test launch without fused multiply-adds: each product
and sum is rounded on its own, as on the CPU, so every backend decides a pixel alike.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._outputs import new_output
from fused_inpaint.triton._grid import row_segment
from fused_inpaint.triton._sampling import (
    BILINEAR,
    ZEROS,
    axis_taps,
    blend4,
    gather4,
    in_frame,
    isfinite,
)

BLOCK_W = 128


@triton.jit
def hole_fraction(tap00, stride_h, stride_w, lanes, in_x0, in_x1, in_y0, in_y1, wx1, wy1,
                  COORD: tl.constexpr):  # fmt: skip
    """The hole indicator (holes != 0) sampled bilinearly at the taps of ``tap00``."""
    h00 = tl.load(tap00, mask=lanes & in_y0 & in_x0, other=0) != 0
    h01 = tl.load(tap00 + stride_w, mask=lanes & in_y0 & in_x1, other=0) != 0
    h10 = tl.load(tap00 + stride_h, mask=lanes & in_y1 & in_x0, other=0) != 0
    h11 = tl.load(tap00 + stride_h + stride_w, mask=lanes & in_y1 & in_x1, other=0) != 0
    return blend4(h00.to(COORD), h01.to(COORD), h10.to(COORD), h11.to(COORD), wx1, wy1)


@triton.jit
def fb_test(
    from_ptr, to_ptr, n, row, col, lanes, H, W,
    from_n, from_c, from_h, from_w, to_n, to_c, to_h, to_w,
    alpha, beta, CHECK_BOUNDS: tl.constexpr, COORD: tl.constexpr,
):  # fmt: skip
    """fb_validity's consistency test of pixels (row, col) of `from`'s frame, also the one
    flow_propagate applies: q = p + from(p), b = to(q). alpha, beta: COORD scalars.

    Returns (consistent, qx, qy, x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1): the test, q
    and its bilinear taps. Reads only where ``lanes``. Strides: <name>_n, _c, _h, _w.
    """
    from_at = from_ptr + n * from_n + row * from_h + col * from_w
    fx = tl.load(from_at, mask=lanes, other=0.0).to(COORD)
    fy = tl.load(from_at + from_c, mask=lanes, other=0.0).to(COORD)
    qx = col.to(COORD) + fx
    qy = row.to(COORD) + fy
    one = tl.full([], 1.0, COORD)
    zero = tl.full([], 0.0, COORD)
    x0, in_x0, in_x1, wx1, _ = axis_taps(qx, W, one, zero, BILINEAR, ZEROS)
    y0, in_y0, in_y1, wy1, _ = axis_taps(qy, H, one, zero, BILINEAR, ZEROS)
    to_at = to_ptr + n * to_n + y0 * to_h + x0 * to_w
    bx00, bx01, bx10, bx11 = gather4(to_at, to_h, to_w, lanes, in_x0, in_x1, in_y0, in_y1,
                                     COORD)  # fmt: skip
    by00, by01, by10, by11 = gather4(to_at + to_c, to_h, to_w, lanes, in_x0, in_x1, in_y0,
                                     in_y1, COORD)  # fmt: skip
    bx = blend4(bx00, bx01, bx10, bx11, wx1, wy1)
    by = blend4(by00, by01, by10, by11, wx1, wy1)
    dx = fx + bx
    dy = fy + by
    # ProPainter's order of operations, so float32 results match its composite. The
    # launchers turn fused multiply-adds off, so every backend rounds each step alike.
    lhs = dx * dx + dy * dy
    magnitude = (fx * fx + fy * fy) + (bx * bx + by * by)
    consistent = isfinite(qx) & isfinite(qy) & (lhs < alpha * magnitude + beta)
    if CHECK_BOUNDS:
        consistent = consistent & in_frame(qx, W) & in_frame(qy, H)
    return consistent, qx, qy, x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1


@triton.jit
def consistent(
    from_ptr, to_ptr, holes_ptr, n, row, col, in_row, H, W,
    from_n, from_c, from_h, from_w, to_n, to_c, to_h, to_w, holes_n, holes_h, holes_w,
    alpha, beta, CHECK_BOUNDS: tl.constexpr, HAS_HOLES: tl.constexpr, COORD: tl.constexpr,
):  # fmt: skip
    """Validity of pixels (row, col) of `from`'s frame: fb_test, and holes of `to`'s frame."""
    valid, _, _, x0, in_x0, in_x1, wx1, y0, in_y0, in_y1, wy1 = fb_test(
        from_ptr, to_ptr, n, row, col, in_row, H, W, from_n, from_c, from_h, from_w,
        to_n, to_c, to_h, to_w, alpha, beta, CHECK_BOUNDS, COORD,
    )  # fmt: skip
    if HAS_HOLES:
        tap00 = holes_ptr + n * holes_n + y0 * holes_h + x0 * holes_w
        hole = hole_fraction(tap00, holes_h, holes_w, in_row, in_x0, in_x1, in_y0, in_y1, wx1,
                             wy1, COORD)  # fmt: skip
        valid = valid & (hole <= 0.1)
    return valid


@triton.jit(do_not_specialize=["H", "W"])
def fb_validity_kernel(
    fw_ptr, bw_ptr, holes_fw_ptr, holes_bw_ptr, out_ptr, H, W,
    fw_n, fw_c, fw_h, fw_w, bw_n, bw_c, bw_h, bw_w,
    holes_fw_n, holes_fw_h, holes_fw_w, holes_bw_n, holes_bw_h, holes_bw_w,
    out_d, out_n, out_h, out_w, alpha: tl.float64, beta: tl.float64,
    CHECK_BOUNDS: tl.constexpr, HAS_HOLES_FW: tl.constexpr, HAS_HOLES_BW: tl.constexpr,
    BOTH: tl.constexpr, COORD: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """out[0] = valid_fw, out[1] = valid_bw (when BOTH); out: (D, N, 1, H, W). The holes
    that valid_fw reads are frame t+1's (holes_fw), valid_bw's frame t's (holes_bw).
    alpha, beta: float64 arguments (a plain float one is float32), used in COORD; runtime
    values, so a new threshold compiles nothing."""
    n, row, col, in_row = row_segment(H, W, BLOCK_W)
    alpha = tl.full([], alpha, COORD)
    beta = tl.full([], beta, COORD)
    out_at = out_ptr + n * out_n + row * out_h + col * out_w
    valid = consistent(
        fw_ptr, bw_ptr, holes_fw_ptr, n, row, col, in_row, H, W,
        fw_n, fw_c, fw_h, fw_w, bw_n, bw_c, bw_h, bw_w, holes_fw_n, holes_fw_h, holes_fw_w,
        alpha, beta, CHECK_BOUNDS, HAS_HOLES_FW, COORD,
    )  # fmt: skip
    # Through float32: the interpreter converts bool to bfloat16 wrongly.
    tl.store(out_at, valid.to(tl.float32).to(out_ptr.dtype.element_ty), mask=in_row)
    if BOTH:
        valid = consistent(
            bw_ptr, fw_ptr, holes_bw_ptr, n, row, col, in_row, H, W,
            bw_n, bw_c, bw_h, bw_w, fw_n, fw_c, fw_h, fw_w, holes_bw_n, holes_bw_h, holes_bw_w,
            alpha, beta, CHECK_BOUNDS, HAS_HOLES_BW, COORD,
        )  # fmt: skip
        tl.store(out_at + out_d, valid.to(tl.float32).to(out_ptr.dtype.element_ty), mask=in_row)


def check_thresholds(alpha, beta) -> None:
    """The consistency test's alpha and beta (fb_validity, flow_propagate): finite and >= 0,
    RuntimeError like the C++ check_fb_thresholds."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (abs(value) < float("inf") and value >= 0):
            raise RuntimeError(f"{name} must be finite and >= 0, got {value}")


def _check_args(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, both, dtype) -> None:
    """The public op's checks, repeated for direct callers; RuntimeError like the C++ ones."""
    if source_bw is not None and not both:
        raise RuntimeError("source_bw is read only with both=True: pass None")
    if flow_fw.dim() != 4 or flow_fw.size(1) != 2 or not flow_fw.is_floating_point():
        raise RuntimeError(f"flow_fw must be a float tensor (N, 2, H, W), got {flow_fw.shape}")
    if flow_bw.shape != flow_fw.shape or flow_bw.dtype != flow_fw.dtype:
        raise RuntimeError("flow_bw must have flow_fw's shape and dtype")
    if flow_bw.device != flow_fw.device:
        raise RuntimeError("flow_bw must be on flow_fw's device")
    n, _, h, w = flow_fw.shape
    for mask in (source_fw, source_bw):
        if mask is not None and (
            mask.shape != (n, 1, h, w) or mask.dtype != torch.uint8 or mask.device != flow_fw.device
        ):
            raise RuntimeError(f"source_mask must be uint8 (N, 1, H, W) = {(n, 1, h, w)}")
    check_thresholds(alpha, beta)
    if dtype not in (None, torch.bool, torch.uint8, flow_fw.dtype):
        raise RuntimeError("dtype must be bool, uint8 or the flow's dtype")


def _mask_strides(mask):
    """(n, h, w) strides of a hole mask (N, 1, H, W), zeros when absent."""
    return (0, 0, 0) if mask is None else (mask.stride(0), mask.stride(2), mask.stride(3))


def forward(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, check_bounds, both, dtype):
    """flow_fw, flow_bw: (N, 2, H, W) -> (D, N, 1, H, W), D = 2 when ``both``."""
    _check_args(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, both, dtype)
    n, _, h, w = flow_fw.shape
    sizes = (2 if both else 1, n, 1, h, w)
    out = new_output(flow_fw, "fb_validity's output", sizes, dtype or flow_fw.dtype)
    if out.numel() == 0:
        return out
    grid = (n * h * triton.cdiv(w, BLOCK_W),)
    # Bool masks written as their bytes (0 or 1): through Triton's i1 pointers the kernel
    # took 111 us on an H100 where float32 masks took 34.
    written = out.view(torch.uint8) if out.dtype == torch.bool else out
    fb_validity_kernel[grid](
        flow_fw, flow_bw,
        flow_fw if source_fw is None else source_fw,
        flow_fw if source_bw is None else source_bw,
        written, h, w, *flow_fw.stride(), *flow_bw.stride(),
        *_mask_strides(source_fw), *_mask_strides(source_bw),
        out.stride(0), out.stride(1), out.stride(3), out.stride(4),
        float(alpha), float(beta), CHECK_BOUNDS=bool(check_bounds),
        HAS_HOLES_FW=source_fw is not None, HAS_HOLES_BW=source_bw is not None,
        BOTH=bool(both), COORD=tl.float64 if flow_fw.dtype == torch.float64 else tl.float32,
        BLOCK_W=BLOCK_W, enable_fp_fusion=False,
    )  # fmt: skip
    return out
