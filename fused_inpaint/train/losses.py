"""The training objective after VINet: L1 in the hole and on the known pixels, a flow loss
against the exact flow, and a temporal warping loss between consecutive outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fused_inpaint.ops import flow_warp


@dataclass(frozen=True)
class LossWeights:
    hole: float = 2.0
    valid: float = 1.0
    flow: float = 0.1
    warp: float = 1.0


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |prediction - target| over the pixels where ``weight`` (N, 1, H, W) is 1;
    prediction, target: (N, C, H, W)."""
    weight = weight.float()  # losses accumulate in float32 under autocast too
    total = ((prediction.float() - target.float()).abs() * weight).sum()
    return total / (weight.sum() * prediction.shape[1]).clamp(min=1)


def reconstruction_losses(
    predicted: torch.Tensor, target: torch.Tensor, hole: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 in the hole and on the known pixels of the uncomposited prediction;
    predicted, target: (N, 3, H, W); hole: (N, 1, H, W) in {0, 1}."""
    return masked_l1(predicted, target, hole), masked_l1(predicted, target, 1 - hole)


def flow_loss(predicted: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Mean end-point L1 in pixels; predicted, exact: (N, 2, H, W)."""
    return (predicted.float() - exact).abs().mean()


def warping_loss(
    current: torch.Tensor, previous: torch.Tensor, backward: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Temporal consistency: the previous output warped to the current frame by the exact
    ``backward`` flow (N, 2, H, W) should match the current output where ``valid``
    (N, 1, H, W); current, previous: (N, 3, H, W)."""
    return masked_l1(current, flow_warp(previous.float(), backward.float()), valid)
