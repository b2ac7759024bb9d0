"""Drop-in replacements with the exact signatures of the peers' composites (SPEC 3.6)."""

from __future__ import annotations

import torch

from fused_inpaint.ops import fb_validity as _fb_validity
from fused_inpaint.ops import flow_warp as _flow_warp

__all__ = ["fb_consistency_check", "flow_warp"]


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    interpolation: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """mmagic's / BasicVSR's ``flow_warp``: x (N, C, H, W), flow (N, H, W, 2) -> (N, C, H, W).

    Same results as their meshgrid + ``grid_sample`` composite for H, W >= 2 (for a single
    row or column their grid degenerates; this keeps the pixel formula), in one fused pass.
    """
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4:
        raise ValueError("flow must be a (N, H, W, 2) tensor")
    if x.size()[-2:] != flow.size()[1:3]:
        raise ValueError(
            f"The spatial sizes of input ({x.size()[-2:]}) and flow ({flow.size()[1:3]}) "
            "are not the same."
        )
    return _flow_warp(
        x,
        flow.permute(0, 3, 1, 2),
        mode=interpolation,
        padding_mode=padding_mode,
        align_corners=align_corners,
    )


def fb_consistency_check(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01, alpha2: float = 0.5
) -> torch.Tensor:
    """ProPainter's ``fbConsistencyCheck``: flows (N, 2, H, W) -> (N, 1, H, W) mask, 1 =
    consistent, in flow_fw's dtype; one fused pass instead of a warp and six kernels."""
    return _fb_validity(flow_fw, flow_bw, alpha=alpha1, beta=alpha2, check_bounds=False)
