"""convlstm_cell: the gate math of a ConvLSTM step, fused (SPEC 3.5)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import (
    check_companion_dtype,
    check_same_device,
    check_sizes,
    check_tensor,
)
from fused_inpaint._outputs import allocate_output, output_like
from fused_inpaint.ops._registry import define_kernel_op


def new_cell_outputs(gates: torch.Tensor, c: torch.Tensor | None):
    """Uninitialised (h_new, c_new) for gates (N, 4*Ch, H, W) and c (N, Ch, H, W) or None.

    h_new has gates' dtype, and is channels_last when the gates are (and are not also
    contiguous); c_new is like c, or without c like h_new. The C++ kernels allocate the same
    (csrc/common/convlstm_cell.h), so the fake kernel's strides are the real ones.
    """
    n, four_ch, h, w = gates.shape
    channels_last = not gates.is_contiguous() and gates.is_contiguous(
        memory_format=torch.channels_last
    )
    sizes = (n, four_ch // 4, h, w)
    h_new = allocate_output(
        "h_new",
        sizes,
        gates.dtype,
        lambda: torch.empty(
            sizes,
            dtype=gates.dtype,
            device=gates.device,
            memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        ),
    )
    return h_new, output_like(h_new if c is None else c, "c_new")


def new_cell_grads(gates: torch.Tensor, c: torch.Tensor | None):
    """Uninitialised (grad_gates like gates, grad_c like c); without c grad_c is empty (0,)."""
    grad_c = gates.new_empty((0,)) if c is None else output_like(c, "grad_c")
    return output_like(gates, "grad_gates"), grad_c


def _backward_fake(grad_h, grad_c_new, gates, c):
    return new_cell_grads(gates, c)


def _setup_context(ctx, inputs, output):
    gates, c = inputs
    ctx.save_for_backward(gates, c)


def _backward(backward_op, ctx, grad_h, grad_c_new):
    gates, c = ctx.saved_tensors
    grad_gates, grad_c = backward_op(grad_h, grad_c_new, gates, c)
    needs_gates, needs_c = ctx.needs_input_grad
    return (grad_gates if needs_gates else None), (grad_c if needs_c else None)


OPS = define_kernel_op(
    "convlstm_cell",
    "(Tensor gates, Tensor? c) -> (Tensor, Tensor)",
    new_cell_outputs,
    backward_schema="(Tensor grad_h, Tensor grad_c_new, Tensor gates, Tensor? c) "
    "-> (Tensor, Tensor)",
    backward_fake=_backward_fake,
    setup_context=_setup_context,
    backward=_backward,
)


def convlstm_cell(
    gates: torch.Tensor, c: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ConvLSTM cell update from the convolved gates: returns (h_new, c_new).

    gates: (N, 4*Ch, H, W) pre-activations in chunks (i, f, o, g); c: (N, Ch, H, W) in
    gates' dtype (or float32 under float16/bfloat16 gates), or None for a zero state.
    ``c_new = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h_new = sigmoid(o) * tanh(c_new)``;
    h_new has gates' dtype, c_new c's (gates' without c). Differentiable w.r.t. gates and c.
    """
    check_tensor("gates", gates, "(N, 4*Ch, H, W)", 4)
    n, four_ch, h, w = gates.shape
    if four_ch % 4:
        raise ValueError(
            f"gates must have shape (N, 4*Ch, H, W): {four_ch} channels is not a multiple of 4"
        )
    if c is not None:
        check_tensor("c", c, "(N, Ch, H, W)", 4)
        check_sizes("c", c, "(N, Ch, H, W)", {0: n, 1: four_ch // 4, 2: h, 3: w})
        check_same_device("c", c, "gates", gates)
        check_companion_dtype("c", c, "gates", gates)
    backend = _backend.resolve("convlstm_cell", gates)
    if backend == "torch":
        return reference.convlstm_cell(gates, c)
    return OPS[backend](gates, c)
