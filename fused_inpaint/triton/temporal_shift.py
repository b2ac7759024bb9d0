"""temporal_shift in Triton (SPEC 3.3): the launcher registered as ``temporal_shift_triton``.

Each program copies a [BLOCK_C, BLOCK_W] tile of one row of one frame, every channel
from its source frame (t + step, t - step or t), zero past the ends of the clip.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._outputs import output_like
from fused_inpaint.triton._grid import row_segment

BLOCK_W = 64
BLOCK_C = 16


@triton.jit(do_not_specialize=["H", "W"])
def temporal_shift_kernel(
    x_ptr, out_ptr, T, C, H, W, fold, end, step,
    x_n, x_t, x_c, x_h, x_w, out_n, out_t, out_c, out_h, out_w,
    BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """out[:, t, :fold] = x[:, t + step], out[:, t, fold:end] = x[:, t - step], the rest x."""
    nt, row, col, in_row = row_segment(H, W, BLOCK_W)
    n = nt // T
    t = nt % T
    for c_start in range(0, C, BLOCK_C):
        c = (c_start + tl.arange(0, BLOCK_C)).to(tl.int64)
        source = tl.where(c < fold, t + step, tl.where(c < end, t - step, t))
        inside = (c < C) & (source >= 0) & (source < T)
        lanes = (c < C)[:, None] & in_row[None, :]
        x_at = (n * x_n + source * x_t + c * x_c)[:, None] + (row * x_h + col * x_w)[None, :]
        value = tl.load(x_ptr + x_at, mask=lanes & inside[:, None], other=0.0)
        out_at = (n * out_n + t * out_t + c * out_c)[:, None] + (row * out_h + col * out_w)[None, :]
        tl.store(out_ptr + out_at, value, mask=lanes)


def forward(x: torch.Tensor, fold: int, reverse: bool) -> torch.Tensor:
    """x: (N, T, C, H, W) -> the shift (``reverse``: the other way, its adjoint)."""
    if x.dim() != 5:
        raise RuntimeError(f"x must have shape (N, T, C, H, W), got {tuple(x.shape)}")
    if fold < 0:
        raise RuntimeError(f"fold must be >= 0, got {fold}")
    out = output_like(x, "temporal_shift's output")
    if out.numel() == 0:
        return out
    n, t, c, h, w = x.shape
    fold = min(fold, c)
    grid = (n * t * h * triton.cdiv(w, BLOCK_W),)
    temporal_shift_kernel[grid](
        x, out, t, c, h, w, fold, min(2 * fold, c), -1 if reverse else 1,
        *x.stride(), *out.stride(), BLOCK_C=BLOCK_C, BLOCK_W=BLOCK_W,
    )  # fmt: skip
    return out
