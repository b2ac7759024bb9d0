"""convlstm_cell in Triton (SPEC 3.5): the launchers registered as ``convlstm_cell_triton``
and ``convlstm_cell_backward_triton`` for CPU (under TRITON_INTERPRET=1) and CUDA tensors.

Each program takes one image row (n, y) and a [BLOCK_C, BLOCK_W] tile of its channels and
columns, so its vector index math is multiply-adds on the tensors' strides, never a
division. Every tensor goes in with its strides: non-contiguous, channels_last and
expanded inputs are never copied. Arithmetic is in ACC (float32, float64 for float64
gates) right after each load; tanh and sigmoid are written with the CPU kernel's exp and
divisions rounded to nearest, so the interpreter runs them too and the gradients agree
with the other backends' to a few ulps.
"""

import torch
import triton
import triton.language as tl

from fused_inpaint._checks import HALF_PRECISION
from fused_inpaint.ops.convlstm_cell import new_cell_grads, new_cell_outputs
from fused_inpaint.triton._math import divide, exp_nonpositive

NUM_WARPS = 4
TILE = 1024  # elements per program


@triton.jit
def sigmoid(v):
    """1 / (1 + exp(-v)), with exp only of -|v|: no overflow, precise on both tails."""
    e = exp_nonpositive(-tl.abs(v))
    r = divide(1.0, 1.0 + e)
    return tl.where(v >= 0, r, e * r)


@triton.jit
def tanh(v):
    e = exp_nonpositive(-2.0 * tl.abs(v))
    t = divide(1.0 - e, 1.0 + e)
    return tl.where(v >= 0, t, -t)


@triton.jit
def as_element_of(ptr, v):
    """float32 or float64 ``v`` cast to ``ptr``'s element type, rounded to nearest even.

    The interpreter's float32 to bfloat16 cast truncates, which over a long recurrence
    drags the state toward zero; rounded first, the value casts exactly, and the
    interpreter gives the GPU's result.
    """
    ty = ptr.dtype.element_ty
    if ty == tl.bfloat16:
        bits = v.to(tl.uint32, bitcast=True)
        bits += 0x7FFF + ((bits >> 16) & 1)
        rounded = (bits & 0xFFFF0000).to(tl.float32, bitcast=True)
        v = tl.where(v == v, rounded, v)  # NaN bits must not carry into the sign
    return v.to(ty)


@triton.jit
def tile_of(N, H, W, CH, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr):
    """This program's row (n, y), its channels [BLOCK_C, 1] and columns [1, BLOCK_W]
    (int64), and which of them exist. The grid is one axis, rows fastest, then column
    tiles, then channel tiles: a GPU's second and third grid axes stop at 65535, fewer
    column tiles than a row of 2^24 pixels has."""
    tile = tl.program_id(0).to(tl.int64)
    rows = N.to(tl.int64) * H
    row = tile % rows
    rest = tile // rows
    column_tiles = tl.cdiv(W, BLOCK_W)
    n = row // H
    y = row % H
    ch = ((rest // column_tiles) * BLOCK_C + tl.arange(0, BLOCK_C))[:, None]
    x = ((rest % column_tiles) * BLOCK_W + tl.arange(0, BLOCK_W))[None, :]
    return n, y, ch, x, (ch < CH) & (x < W)


@triton.jit
def offsets(n, y, ch, x, stride_n, stride_c, stride_h, stride_w):
    return n * stride_n + y * stride_h + ch * stride_c + x * stride_w


@triton.jit
def load_gates(gates_ptr, at, chunk_step, mask, ACC: tl.constexpr):
    """The four pre-activations (i, f, o, g) at offsets ``at``, chunks ``chunk_step`` apart."""
    i = tl.load(gates_ptr + at, mask=mask, other=0.0).to(ACC)
    f = tl.load(gates_ptr + at + chunk_step, mask=mask, other=0.0).to(ACC)
    o = tl.load(gates_ptr + at + 2 * chunk_step, mask=mask, other=0.0).to(ACC)
    g = tl.load(gates_ptr + at + 3 * chunk_step, mask=mask, other=0.0).to(ACC)
    return i, f, o, g


@triton.jit(do_not_specialize=["N", "H", "W", "CH"])
def convlstm_cell_fwd_kernel(
    gates_ptr, c_ptr, h_new_ptr, c_new_ptr, N, H, W, CH,
    stride_gn, stride_gc, stride_gh, stride_gw,
    stride_cn, stride_cc, stride_ch, stride_cw,
    stride_hn, stride_hc, stride_hh, stride_hw,
    stride_dn, stride_dc, stride_dh, stride_dw,
    HAS_C: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """c_new = sigmoid(f) c + sigmoid(i) tanh(g), h_new = sigmoid(o) tanh(c_new).
    Strides: g gates, c c, h h_new, d c_new; without HAS_C, c is zero and c_ptr unused."""
    n, y, ch, x, mask = tile_of(N, H, W, CH, BLOCK_C, BLOCK_W)
    gates_at = offsets(n, y, ch, x, stride_gn, stride_gc, stride_gh, stride_gw)
    i, f, o, g = load_gates(gates_ptr, gates_at, CH.to(tl.int64) * stride_gc, mask, ACC)
    in_gate = sigmoid(i) * tanh(g)
    if HAS_C:
        c_at = offsets(n, y, ch, x, stride_cn, stride_cc, stride_ch, stride_cw)
        c = tl.load(c_ptr + c_at, mask=mask, other=0.0).to(ACC)
        c_new = sigmoid(f) * c + in_gate
    else:
        c_new = in_gate
    h_new = sigmoid(o) * tanh(c_new)
    h_at = offsets(n, y, ch, x, stride_hn, stride_hc, stride_hh, stride_hw)
    c_new_at = offsets(n, y, ch, x, stride_dn, stride_dc, stride_dh, stride_dw)
    tl.store(h_new_ptr + h_at, as_element_of(h_new_ptr, h_new), mask=mask)
    tl.store(c_new_ptr + c_new_at, as_element_of(c_new_ptr, c_new), mask=mask)


@triton.jit(do_not_specialize=["N", "H", "W", "CH"])
def convlstm_cell_bwd_kernel(
    grad_h_ptr, grad_c_new_ptr, gates_ptr, c_ptr, grad_gates_ptr, grad_c_ptr, N, H, W, CH,
    stride_hn, stride_hc, stride_hh, stride_hw,
    stride_dn, stride_dc, stride_dh, stride_dw,
    stride_gn, stride_gc, stride_gh, stride_gw,
    stride_cn, stride_cc, stride_ch, stride_cw,
    stride_an, stride_ac, stride_ah, stride_aw,
    stride_bn, stride_bc, stride_bh, stride_bw,
    HAS_C: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """Gradients of all four gates and of c from grad_h and grad_c_new, recomputing the
    activations. Strides: h grad_h, d grad_c_new, g gates, c c, a grad_gates, b grad_c."""
    n, y, ch, x, mask = tile_of(N, H, W, CH, BLOCK_C, BLOCK_W)
    gates_at = offsets(n, y, ch, x, stride_gn, stride_gc, stride_gh, stride_gw)
    chunk_step = CH.to(tl.int64) * stride_gc
    pre_i, pre_f, pre_o, pre_g = load_gates(gates_ptr, gates_at, chunk_step, mask, ACC)
    grad_h_at = offsets(n, y, ch, x, stride_hn, stride_hc, stride_hh, stride_hw)
    grad_c_new_at = offsets(n, y, ch, x, stride_dn, stride_dc, stride_dh, stride_dw)
    grad_h = tl.load(grad_h_ptr + grad_h_at, mask=mask, other=0.0).to(ACC)
    grad_c_new = tl.load(grad_c_new_ptr + grad_c_new_at, mask=mask, other=0.0).to(ACC)
    i = sigmoid(pre_i)
    f = sigmoid(pre_f)
    o = sigmoid(pre_o)
    g = tanh(pre_g)
    # Without HAS_C there is no forget term, not a zero one (a NaN forget gate reads as
    # nothing), as in the forward kernel.
    if HAS_C:
        c_at = offsets(n, y, ch, x, stride_cn, stride_cc, stride_ch, stride_cw)
        c = tl.load(c_ptr + c_at, mask=mask, other=0.0).to(ACC)
        tanh_c_new = tanh(f * c + i * g)
    else:
        tanh_c_new = tanh(i * g)
    # The cell state reaches the loss directly and through h_new.
    dc = grad_c_new + grad_h * o * (1.0 - tanh_c_new * tanh_c_new)
    grad_at = grad_gates_ptr + offsets(n, y, ch, x, stride_an, stride_ac, stride_ah, stride_aw)
    chunk_step = CH.to(tl.int64) * stride_ac
    d_i = dc * g * i * (1.0 - i)
    if HAS_C:
        d_f = dc * c * f * (1.0 - f)
    else:
        d_f = tl.zeros_like(dc)
    d_o = grad_h * tanh_c_new * o * (1.0 - o)
    d_g = dc * i * (1.0 - g * g)
    tl.store(grad_at, as_element_of(grad_gates_ptr, d_i), mask=mask)
    tl.store(grad_at + chunk_step, as_element_of(grad_gates_ptr, d_f), mask=mask)
    tl.store(grad_at + 2 * chunk_step, as_element_of(grad_gates_ptr, d_o), mask=mask)
    tl.store(grad_at + 3 * chunk_step, as_element_of(grad_gates_ptr, d_g), mask=mask)
    if HAS_C:
        grad_c_at = offsets(n, y, ch, x, stride_bn, stride_bc, stride_bh, stride_bw)
        tl.store(grad_c_ptr + grad_c_at, as_element_of(grad_c_ptr, dc * f), mask=mask)


def _check_args(gates: torch.Tensor, c: torch.Tensor | None) -> None:
    """The public op's checks, repeated for direct callers of the registered op; like the
    C++ kernels' checks, they raise RuntimeError."""
    if gates.dim() != 4 or gates.dtype not in (
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
    ):
        raise RuntimeError(
            f"gates must be a float16/bfloat16/float32/float64 tensor of shape "
            f"(N, 4*Ch, H, W), got {gates.dtype} {tuple(gates.shape)}"
        )
    n, four_ch, h, w = gates.shape
    if four_ch % 4:
        raise RuntimeError(f"gates must have shape (N, 4*Ch, H, W), got {tuple(gates.shape)}")
    if c is None:
        return
    if c.shape != (n, four_ch // 4, h, w):
        raise RuntimeError(
            f"c must have shape (N, Ch, H, W) = {(n, four_ch // 4, h, w)}, got {tuple(c.shape)}"
        )
    if c.device != gates.device:
        raise RuntimeError(f"c must be on gates' device ({gates.device}), got {c.device}")
    if c.dtype != gates.dtype and not (c.dtype == torch.float32 and gates.dtype in HALF_PRECISION):
        raise RuntimeError(
            f"c must have gates' dtype ({gates.dtype}), or float32 when gates are half "
            f"precision; got {c.dtype}"
        )


def _check_grads(grad_h, grad_c_new, gates, c) -> None:
    hidden_shape = (gates.size(0), gates.size(1) // 4, gates.size(2), gates.size(3))
    cell_dtype = gates.dtype if c is None else c.dtype
    for name, grad, dtype in (
        ("grad_h", grad_h, gates.dtype),
        ("grad_c_new", grad_c_new, cell_dtype),
    ):
        if grad.shape != hidden_shape or grad.dtype != dtype or grad.device != gates.device:
            raise RuntimeError(
                f"{name} must be a {dtype} tensor of shape (N, Ch, H, W) = {hidden_shape} on "
                f"{gates.device}, got {grad.dtype} {tuple(grad.shape)} on {grad.device}"
            )


def _launch_config(gates: torch.Tensor) -> tuple[tuple[int], dict]:
    """Grid (one axis: tile_of) and block sizes: the tile is long along the gates'
    contiguous dimension."""
    n, four_ch, h, w = gates.shape
    hidden = four_ch // 4
    if gates.stride(1) < gates.stride(3):  # channels_last: channels are contiguous
        block_c = min(triton.next_power_of_2(hidden), 64)
        block_w = min(triton.next_power_of_2(w), TILE // block_c)
    else:
        block_w = min(triton.next_power_of_2(w), 256)
        block_c = min(triton.next_power_of_2(hidden), TILE // block_w)
    grid = (n * h * triton.cdiv(w, block_w) * triton.cdiv(hidden, block_c),)
    acc = tl.float64 if gates.dtype == torch.float64 else tl.float32
    return grid, dict(ACC=acc, BLOCK_C=block_c, BLOCK_W=block_w, num_warps=NUM_WARPS)


def forward(gates: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """gates: (N, 4*Ch, H, W), c: (N, Ch, H, W) or None -> (h_new, c_new) (N, Ch, H, W)."""
    _check_args(gates, c)
    h_new, c_new = new_cell_outputs(gates, c)
    if h_new.numel() == 0:
        return h_new, c_new
    grid, config = _launch_config(gates)
    c_strides = (0, 0, 0, 0) if c is None else c.stride()
    convlstm_cell_fwd_kernel[grid](
        gates, gates if c is None else c, h_new, c_new, gates.size(0), gates.size(2),
        gates.size(3), h_new.size(1), *gates.stride(), *c_strides, *h_new.stride(), *c_new.stride(),
        HAS_C=c is not None, **config,
    )  # fmt: skip
    return h_new, c_new


def backward(
    grad_h: torch.Tensor, grad_c_new: torch.Tensor, gates: torch.Tensor, c: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """grad_h, grad_c_new: (N, Ch, H, W) -> (grad_gates like gates, grad_c like c, or an
    empty (0,) tensor without c)."""
    _check_args(gates, c)
    _check_grads(grad_h, grad_c_new, gates, c)
    grad_gates, grad_c = new_cell_grads(gates, c)
    if gates.numel() == 0:
        return grad_gates, grad_c
    grid, config = _launch_config(gates)
    c_strides = (0, 0, 0, 0) if c is None else c.stride()
    grad_c_strides = (0, 0, 0, 0) if c is None else grad_c.stride()
    convlstm_cell_bwd_kernel[grid](
        grad_h, grad_c_new, gates, gates if c is None else c, grad_gates,
        grad_gates if c is None else grad_c, gates.size(0), gates.size(2), gates.size(3),
        gates.size(1) // 4,
        *grad_h.stride(), *grad_c_new.stride(), *gates.stride(), *c_strides,
        *grad_gates.stride(), *grad_c_strides,
        HAS_C=c is not None, **config,
    )  # fmt: skip
    return grad_gates, grad_c
