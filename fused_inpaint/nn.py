"""Modules built on the ops."""

from __future__ import annotations

import torch

from fused_inpaint.ops import flow_warp

__all__ = ["FlowWarp"]


class FlowWarp(torch.nn.Module):
    """Backward warp by optical flow; ``forward(x (N, C, H, W), flow (N, 2, H, W))``."""

    def __init__(
        self, mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool = True
    ) -> None:
        super().__init__()
        self.mode = mode
        self.padding_mode = padding_mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow_warp(
            x,
            flow,
            mode=self.mode,
            padding_mode=self.padding_mode,
            align_corners=self.align_corners,
        )

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, padding_mode={self.padding_mode!r}, "
            f"align_corners={self.align_corners}"
        )
