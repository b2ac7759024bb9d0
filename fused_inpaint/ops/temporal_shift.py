"""temporal_shift: TSM's shift of channel groups between neighbouring frames (SPEC 3.3)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import check_tensor
from fused_inpaint.ops._registry import define_kernel_op


def _fake(x, fold, reverse):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    _, ctx.fold, ctx.reverse = inputs


def _backward(shift_op, ctx, grad_out):
    # The adjoint of a shift is the shift the other way.
    return shift_op(grad_out, ctx.fold, not ctx.reverse), None, None


OPS = define_kernel_op(
    "temporal_shift",
    "(Tensor x, int fold, bool reverse) -> Tensor",
    _fake,
    setup_context=_setup_context,
    backward=_backward,
)


def check_fold_div(fold_div) -> None:
    if not isinstance(fold_div, int) or isinstance(fold_div, bool) or fold_div < 1:
        raise ValueError(f"fold_div must be an integer >= 1, got {fold_div!r}")


def temporal_shift(x: torch.Tensor, *, fold_div: int = 8) -> torch.Tensor:
    """TSM shift: x (N, T, C, H, W) -> (N, T, C, H, W).

    With fold = C // fold_div: channels [0, fold) take frame t+1 (zero at t = T-1),
    [fold, 2 fold) take frame t-1 (zero at t = 0), the rest stay. Differentiable.
    """
    check_tensor("x", x, "(N, T, C, H, W)", 5)
    check_fold_div(fold_div)
    backend = _backend.resolve("temporal_shift", x)
    if backend == "torch":
        return reference.temporal_shift(x, fold_div=fold_div)
    return OPS[backend](x, x.shape[2] // fold_div, False)
