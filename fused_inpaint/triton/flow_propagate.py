"""flow_propagate in Triton (SPEC 3.5b): the launcher registered as ``flow_propagate_triton``.

Each program takes a segment of BLOCK_W pixels of one row. Known pixels write (t, p) and
read no flow; hole pixels run fb_validity's consistency test (the same code), then read
the neighbour's state at round(q). Launched without fused multiply-adds, like fb_validity.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._outputs import new_output
from fused_inpaint.triton._grid import row_segment
from fused_inpaint.triton._sampling import round_half_even
from fused_inpaint.triton.fb_validity import check_thresholds, fb_test

BLOCK_W = 128
# No limit: frame indices are int32 and >= 0, so no two are further apart.
NO_AGE_LIMIT = 2**31 - 1


@triton.jit(do_not_specialize=["H", "W", "t", "max_age"])
def flow_propagate_kernel(
    hole_ptr, to_ptr, from_ptr, frame_ptr, pos_ptr, frame_out_ptr, pos_out_ptr, H, W, t, max_age,
    hole_n, hole_h, hole_w, to_n, to_c, to_h, to_w, from_n, from_c, from_h, from_w,
    frame_n, frame_h, frame_w, pos_n, pos_c, pos_h, pos_w,
    frame_out_n, frame_out_h, frame_out_w, pos_out_n, pos_out_c, pos_out_h, pos_out_w,
    alpha: tl.float64, beta: tl.float64, COORD: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """Frame t's state (frame_out, pos_out) from the neighbour's (frame, pos), sources at
    most max_age frames from t. alpha, beta: float64, used in COORD, as in fb_validity's
    kernel. Strides: <name>_n, _c, _h, _w."""
    n, row, col, in_row = row_segment(H, W, BLOCK_W)
    hole_at = hole_ptr + n * hole_n + row * hole_h + col * hole_w
    in_hole = tl.load(hole_at, mask=in_row, other=0) != 0
    consistent, qx, qy, _, _, _, _, _, _, _, _ = fb_test(
        to_ptr, from_ptr, n, row, col, in_hole, H, W, to_n, to_c, to_h, to_w,
        from_n, from_c, from_h, from_w, tl.full([], alpha, COORD), tl.full([], beta, COORD),
        True, COORD,
    )  # fmt: skip
    # With the bounds checked, a consistent q is in frame: r is a pixel of the neighbour.
    consistent = consistent & in_hole
    rx = tl.where(consistent, round_half_even(qx), 0.0)
    ry = tl.where(consistent, round_half_even(qy), 0.0)
    r_row = ry.to(tl.int64)
    r_col = rx.to(tl.int64)
    frame_at = frame_ptr + n * frame_n + r_row * frame_h + r_col * frame_w
    source = tl.load(frame_at, mask=consistent, other=-1)
    age = tl.abs(source.to(tl.int64) - t)
    take = consistent & (source >= 0) & (age <= max_age)
    pos_at = pos_ptr + n * pos_n + r_row * pos_h + r_col * pos_w
    carried_x = tl.load(pos_at, mask=take, other=0.0).to(COORD) + (qx - rx)
    carried_y = tl.load(pos_at + pos_c, mask=take, other=0.0).to(COORD) + (qy - ry)
    frame = tl.where(in_hole, tl.where(take, source, -1), t)
    x = tl.where(in_hole, tl.where(take, carried_x, 0.0), col.to(COORD))
    y = tl.where(in_hole, tl.where(take, carried_y, 0.0), row.to(COORD))
    frame_out_at = frame_out_ptr + n * frame_out_n + row * frame_out_h + col * frame_out_w
    tl.store(frame_out_at, frame.to(tl.int32), mask=in_row)
    pos_out_at = pos_out_ptr + n * pos_out_n + row * pos_out_h + col * pos_out_w
    tl.store(pos_out_at, x.to(tl.float32), mask=in_row)
    tl.store(pos_out_at + pos_out_c, y.to(tl.float32), mask=in_row)


def _check_args(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta, max_age) -> None:
    """The public op's checks, repeated for direct callers; RuntimeError like the C++ ones."""
    if flow_to.dim() != 4 or flow_to.size(1) != 2 or not flow_to.is_floating_point():
        raise RuntimeError(f"flow_to must be a float tensor (N, 2, H, W), got {flow_to.shape}")
    n, _, h, w = flow_to.shape
    for name, x, channels, dtype in (
        ("flow_from", flow_from, 2, flow_to.dtype),
        ("hole", hole, 1, torch.uint8),
        ("src_frame", src_frame, 1, torch.int32),
        ("src_pos", src_pos, 2, torch.float32),
    ):
        if x.shape != (n, channels, h, w) or x.dtype != dtype or x.device != flow_to.device:
            raise RuntimeError(
                f"{name} must be {dtype} (N, {channels}, H, W) = {(n, channels, h, w)} on "
                f"{flow_to.device}, got {x.dtype} {tuple(x.shape)} on {x.device}"
            )
    if not 0 <= t < 2**31:
        raise RuntimeError(f"t must be a frame index in [0, 2^31), got {t}")
    check_thresholds(alpha, beta)
    if max_age is not None and max_age < 0:
        raise RuntimeError(f"max_age must be >= 0, got {max_age}")


def forward(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta, max_age):
    """-> (src_frame_t (N, 1, H, W) int32, src_pos_t (N, 2, H, W) float32), contiguous."""
    _check_args(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta, max_age)
    n, _, h, w = flow_to.shape
    frame_out = new_output(flow_to, "src_frame_t", (n, 1, h, w), torch.int32)
    pos_out = new_output(flow_to, "src_pos_t", (n, 2, h, w), torch.float32)
    if frame_out.numel() == 0:
        return frame_out, pos_out
    grid = (n * h * triton.cdiv(w, BLOCK_W),)
    flow_propagate_kernel[grid](
        hole, flow_to, flow_from, src_frame, src_pos, frame_out, pos_out, h, w, t,
        NO_AGE_LIMIT if max_age is None else max_age,
        hole.stride(0), hole.stride(2), hole.stride(3), *flow_to.stride(), *flow_from.stride(),
        src_frame.stride(0), src_frame.stride(2), src_frame.stride(3), *src_pos.stride(),
        frame_out.stride(0), frame_out.stride(2), frame_out.stride(3), *pos_out.stride(),
        float(alpha), float(beta),
        COORD=tl.float64 if flow_to.dtype == torch.float64 else tl.float32, BLOCK_W=BLOCK_W,
        enable_fp_fusion=False,
    )  # fmt: skip
    return frame_out, pos_out
