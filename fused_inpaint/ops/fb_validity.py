"""fb_validity: forward-backward optical flow consistency masks (SPEC 3.2)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import (
    check_bool,
    check_non_negative,
    check_same_device,
    check_sizes,
    check_tensor,
)
from fused_inpaint.ops._registry import define_kernel_op

MASK_DTYPES = (torch.bool, torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _fake(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, check_bounds, both, dtype):
    n, _, h, w = flow_fw.shape
    return flow_fw.new_empty((2 if both else 1, n, 1, h, w), dtype=dtype or flow_fw.dtype)


OPS = define_kernel_op(
    "fb_validity",
    "(Tensor flow_fw, Tensor flow_bw, Tensor? source_fw, Tensor? source_bw, float alpha, "
    "float beta, bool check_bounds, bool both, ScalarType? dtype) -> Tensor",
    _fake,
)


def hole_bytes(mask: torch.Tensor) -> torch.Tensor:
    """A hole mask of any dtype (nonzero = hole) as uint8 storage, detached."""
    mask = mask.detach()
    if mask.dtype == torch.uint8:
        return mask
    if mask.dtype != torch.bool:
        mask = mask != 0
    if torch.compiler.is_compiling():
        # Inductor lowers a bool -> uint8 view to a bitcast, which Triton refuses (int1 to
        # uint8: "Cannot bitcast data-type of size 1 to data-type of size 8"); a conversion
        # compiles, and fuses into the kernel that made the mask.
        return mask.to(torch.uint8)
    return mask.view(torch.uint8)  # eager: the same bytes, no copy


def hole_indicator(name: str, mask, like_name: str, like: torch.Tensor) -> torch.Tensor:
    """A hole mask (N, 1, H, W) as uint8 storage (nonzero = hole), checked against the
    N, H and W of ``like`` (a flow)."""
    check_tensor(name, mask, "(N, 1, H, W)", 4, floating=False)
    n, _, h, w = like.shape
    check_sizes(name, mask, "(N, 1, H, W)", {0: n, 1: 1, 2: h, 3: w})
    check_same_device(name, mask, like_name, like)
    return hole_bytes(mask)


def _source_holes(mask, flow_fw: torch.Tensor) -> torch.Tensor | None:
    """source_mask's holes as uint8 storage, or None without a mask."""
    return None if mask is None else hole_indicator("source_mask", mask, "flow_fw", flow_fw)


def fb_validity(
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    *,
    alpha: float = 0.01,
    beta: float = 0.5,
    check_bounds: bool = True,
    source_mask=None,
    both: bool = False,
    dtype: torch.dtype | None = None,
):
    """1 where the forward flow is consistent with the backward flow, else 0.

    flow_fw: (N, 2, H, W) from frame t to t+1; flow_bw: (N, 2, H, W) from t+1 to t. For
    each pixel p, with q = p + flow_fw(p) and b = flow_bw sampled at q:
    ``|flow_fw(p) + b|^2 < alpha (|flow_fw(p)|^2 + |b|^2) + beta``, q in frame when
    ``check_bounds``, and q not leaning on holes of ``source_mask`` (N, 1, H, W), nonzero
    = hole in frame t+1. Returns (N, 1, H, W) of exactly 0/1 in ``dtype`` (default: the
    flow's; bool and uint8 accepted); ``both=True`` returns (valid_fw, valid_bw) from one
    pass, with ``source_mask`` then a pair (mask_t, mask_t1) or ignored. Not differentiable.
    """
    check_tensor("flow_fw", flow_fw, "(N, 2, H, W)", 4)
    check_tensor("flow_bw", flow_bw, "(N, 2, H, W)", 4)
    n, _, h, w = flow_fw.shape
    check_sizes("flow_fw", flow_fw, "(N, 2, H, W)", {1: 2})
    check_sizes("flow_bw", flow_bw, "(N, 2, H, W) like flow_fw", {0: n, 1: 2, 2: h, 3: w})
    check_same_device("flow_bw", flow_bw, "flow_fw", flow_fw)
    if flow_bw.dtype != flow_fw.dtype:
        raise TypeError(
            f"flow_bw must have the dtype of flow_fw ({flow_fw.dtype}), got {flow_bw.dtype}"
        )
    check_non_negative("alpha", alpha)
    check_non_negative("beta", beta)
    check_bool("check_bounds", check_bounds)
    check_bool("both", both)
    if dtype is not None and dtype not in MASK_DTYPES:
        raise TypeError(f"dtype must be one of {MASK_DTYPES} or None, got {dtype}")
    if isinstance(source_mask, (tuple, list)):
        if len(source_mask) != 2:
            raise ValueError("source_mask must be a tensor or a pair (mask_t, mask_t1)")
        mask_t, mask_t1 = source_mask
    else:  # a single mask holds the holes of frame t+1; with both=True it applies to neither
        mask_t, mask_t1 = None, None if both else source_mask
    holes_t1 = _source_holes(mask_t1, flow_fw)
    holes_t = _source_holes(mask_t, flow_fw)  # checked even where both=False ignores it
    if not both:
        holes_t = None

    backend = _backend.resolve("fb_validity", flow_fw)
    if backend == "torch":
        return reference.fb_validity(
            flow_fw.detach(),
            flow_bw.detach(),
            alpha=alpha,
            beta=beta,
            check_bounds=check_bounds,
            source_mask=(holes_t, holes_t1) if both else holes_t1,
            both=both,
            dtype=dtype,
        )
    # The kernels write bool, uint8 or the flow's dtype; other float dtypes are cast.
    direct = dtype in (None, torch.bool, torch.uint8, flow_fw.dtype)
    out = OPS[backend](
        flow_fw.detach(),
        flow_bw.detach(),
        holes_t1,
        holes_t,
        float(alpha),
        float(beta),
        check_bounds,
        both,
        dtype if direct else torch.uint8,
    )
    if not direct:
        out = out.to(dtype)
    return (out[0], out[1]) if both else out[0]
