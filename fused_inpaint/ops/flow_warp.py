"""flow_warp: backward warp of features by optical flow (SPEC 3.1)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import (
    check_bool,
    check_choice,
    check_companion_dtype,
    check_same_device,
    check_sizes,
    check_tensor,
)
from fused_inpaint.ops._registry import define_kernel_op

MODES = {"bilinear": 0, "nearest": 1}
PADDING_MODES = {"zeros": 0, "border": 1}


def _fake(x, flow, mode, padding_mode, align_corners):
    return torch.empty_like(x)


def _backward_fake(grad_out, x, flow, mode, padding_mode, align_corners):
    return torch.empty_like(x), torch.empty_like(flow)


def _setup_context(ctx, inputs, output):
    x, flow, *ctx.params = inputs
    ctx.save_for_backward(x, flow)


def _backward(backward_op, ctx, grad_out):
    x, flow = ctx.saved_tensors
    grad_x, grad_flow = backward_op(grad_out, x, flow, *ctx.params)
    needs_x, needs_flow = ctx.needs_input_grad[:2]
    return (grad_x if needs_x else None), (grad_flow if needs_flow else None), None, None, None


OPS = define_kernel_op(
    "flow_warp",
    "(Tensor x, Tensor flow, int mode, int padding_mode, bool align_corners) -> Tensor",
    _fake,
    backward_schema="(Tensor grad_out, Tensor x, Tensor flow, int mode, int padding_mode, "
    "bool align_corners) -> (Tensor, Tensor)",
    backward_fake=_backward_fake,
    setup_context=_setup_context,
    backward=_backward,
)


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """Warps ``x`` backward by ``flow``: ``out[n, c, p] = x[n, c](p + flow[n, :, p])``.

    x: (N, C, H, W); flow: (N, 2, H, W) in pixels, channel 0 = dx, 1 = dy. Returns
    (N, C, H, W) in x's dtype. ``mode``: "bilinear" | "nearest" (half to even);
    ``padding_mode``: "zeros" | "border"; ``align_corners=False`` reproduces mmagic's
    ``flow_warp(..., align_corners=False)``. Non-finite flow samples nothing (zero).
    Differentiable w.r.t. ``x`` and ``flow``.
    """
    check_tensor("x", x, "(N, C, H, W)", 4)
    check_tensor("flow", flow, "(N, 2, H, W)", 4)
    n, _, h, w = x.shape
    check_sizes("flow", flow, "(N, 2, H, W)", {0: n, 1: 2, 2: h, 3: w})
    check_same_device("flow", flow, "x", x)
    check_companion_dtype("flow", flow, "x", x)
    check_choice("mode", mode, MODES)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_bool("align_corners", align_corners)
    backend = _backend.resolve("flow_warp", x)
    if backend == "torch":
        return reference.flow_warp(
            x, flow, mode=mode, padding_mode=padding_mode, align_corners=align_corners
        )
    return OPS[backend](x, flow, MODES[mode], PADDING_MODES[padding_mode], align_corners)
