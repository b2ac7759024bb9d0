"""temporal_shift_align: TSAM's flow-aligned, mask-trusted temporal shift (SPEC 3.4)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import (
    check_bool,
    check_companion_dtype,
    check_same_device,
    check_sizes,
    check_tensor,
)
from fused_inpaint.ops._registry import define_kernel_op
from fused_inpaint.ops.temporal_shift import check_fold_div

FLOW_SHAPE = "(N, T-1, 2, Hf, Wf)"
MASK_SHAPE = "(N, T-1, 1, Hf, Wf)"
FLOW_SIDES = "must be at least 1x1 pixels where x has pixels to align (N, T-1, H, W nonzero)"


def flows_are_read(x: torch.Tensor) -> bool:
    """Whether any feature pixel of x (N, T, C, H, W) reads the flows: N, T-1, H and W
    nonzero. Where none does, a flow may have no pixels (Hf or Wf zero)."""
    n, t, _, h, w = x.shape
    return n > 0 and t > 1 and h > 0 and w > 0


def _fake(x, flow_fw, flow_bw, valid_fw, valid_bw, fold, causal):
    return torch.empty_like(x)


def _backward_fake(grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw, fold, causal, flow_grads):
    def flow_grad(flow, wanted):
        return torch.empty_like(flow) if wanted else flow.new_empty(0)

    return (
        torch.empty_like(x),
        flow_grad(flow_fw, flow_grads and not causal),
        flow_grad(flow_bw, flow_grads),
    )


def _setup_context(ctx, inputs, output):
    x, flow_fw, flow_bw, valid_fw, valid_bw, ctx.fold, ctx.causal = inputs
    ctx.save_for_backward(x, flow_fw, flow_bw, valid_fw, valid_bw)


def _backward(backward_op, ctx, grad_out):
    x, flow_fw, flow_bw, valid_fw, valid_bw = ctx.saved_tensors
    needs = ctx.needs_input_grad
    flow_grads = needs[1] or needs[2]
    grad_x, grad_fw, grad_bw = backward_op(
        grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw, ctx.fold, ctx.causal, flow_grads
    )
    return (
        grad_x if needs[0] else None,
        grad_fw if needs[1] and not ctx.causal else None,
        grad_bw if needs[2] else None,
        None, None, None, None,
    )  # fmt: skip


OPS = define_kernel_op(
    "temporal_shift_align",
    "(Tensor x, Tensor flow_fw, Tensor flow_bw, Tensor? valid_fw, Tensor? valid_bw, int fold, "
    "bool causal) -> Tensor",
    _fake,
    backward_schema="(Tensor grad_out, Tensor x, Tensor flow_fw, Tensor flow_bw, "
    "Tensor? valid_fw, Tensor? valid_bw, int fold, bool causal, bool flow_grads) "
    "-> (Tensor, Tensor, Tensor)",
    backward_fake=_backward_fake,
    setup_context=_setup_context,
    backward=_backward,
)


def _check_flow(name: str, flow, x: torch.Tensor, like: torch.Tensor | None) -> None:
    check_tensor(name, flow, FLOW_SHAPE, 5)
    n, t = x.shape[:2]
    expected = {0: n, 1: t - 1, 2: 2}
    if like is not None:
        expected.update({3: like.shape[3], 4: like.shape[4]})
    check_sizes(name, flow, FLOW_SHAPE, expected)
    if flows_are_read(x) and (flow.shape[3] < 1 or flow.shape[4] < 1):
        raise ValueError(f"{name} {FLOW_SIDES}, got {tuple(flow.shape)}")
    check_same_device(name, flow, "x", x)
    check_companion_dtype(name, flow, "x", x)
    if flow.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {flow.dtype}")


def _check_mask(name: str, valid, flow: torch.Tensor) -> torch.Tensor | None:
    """A trust mask (N, T-1, 1, Hf, Wf) in [0, 1], returned in the flow's dtype."""
    if valid is None:
        return None
    check_tensor(name, valid, MASK_SHAPE, 5, floating=False)
    n, k, _, hf, wf = flow.shape
    check_sizes(name, valid, MASK_SHAPE, {0: n, 1: k, 2: 1, 3: hf, 4: wf})
    check_same_device(name, valid, "x", flow)
    return valid.detach().to(flow.dtype)


def temporal_shift_align(
    x: torch.Tensor,
    flow_fw: torch.Tensor | None,
    flow_bw: torch.Tensor,
    valid_fw: torch.Tensor | None = None,
    valid_bw: torch.Tensor | None = None,
    *,
    fold_div: int = 8,
    causal: bool = False,
) -> torch.Tensor:
    """Temporal shift whose shifted channels are aligned by optical flow (TSAM).

    x: (N, T, C, H, W); flow_fw: (N, T-1, 2, Hf, Wf), frame t to t+1 on t's grid;
    flow_bw: (N, T-1, 2, Hf, Wf), frame t+1 to t on t+1's grid; valid_*: (N, T-1, 1, Hf,
    Wf) in [0, 1] (1 = trust; None = all 1; not checked, as that would read them: a value
    outside blends beyond the two frames). Flows and masks at any resolution are read
    inline (nearest, vectors scaled by W/Wf, H/Hf). With fold = C // fold_div, channels
    [0, fold) of frame t become ``w S(x[t+1], p + F_fw[t](p)) + (1-w) x[t]`` (zero at
    t = T-1), channels [fold, 2 fold) likewise from frame t-1 along F_bw[t-1] (zero at
    t = 0), the rest stay; w = valid * inframe. ``causal``: channels [0, fold) are kept
    and flow_fw may be None. Differentiable w.r.t. x, flow_fw and flow_bw.

    Zero sizes: N, C, H or W zero gives an empty output (and gradients). T = 0 is refused
    (ValueError: the flows' T-1 frames have no shape); T = 1 takes flows of zero frames. A
    flow (and its masks) may have Hf or Wf zero only where no feature pixel reads it (N,
    T-1, H or W zero); elsewhere that is refused, naming the flow.
    """
    check_tensor("x", x, "(N, T, C, H, W)", 5)
    if x.shape[1] < 1:
        raise ValueError(f"x must have at least one frame, got shape {tuple(x.shape)}")
    check_fold_div(fold_div)
    check_bool("causal", causal)
    _check_flow("flow_bw", flow_bw, x, None)
    if flow_fw is None:
        if not causal:
            raise ValueError("flow_fw is required unless causal=True")
    else:
        _check_flow("flow_fw", flow_fw, x, flow_bw)
    if flow_fw is None and valid_fw is not None:
        raise ValueError("valid_fw must be None when flow_fw is None (causal=True)")
    valid_fw = None if flow_fw is None else _check_mask("valid_fw", valid_fw, flow_fw)
    valid_bw = _check_mask("valid_bw", valid_bw, flow_bw)
    backend = _backend.resolve("temporal_shift_align", x)
    if backend == "torch":
        return reference.temporal_shift_align(
            x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=fold_div, causal=causal
        )
    # The kernels never read flow_fw in causal mode: flow_bw stands in for a missing one.
    return OPS[backend](
        x, flow_bw if flow_fw is None else flow_fw, flow_bw, valid_fw, valid_bw,
        x.shape[2] // fold_div, causal,
    )  # fmt: skip
